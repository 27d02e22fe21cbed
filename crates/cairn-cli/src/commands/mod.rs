//! One module per subcommand: its arguments and what it does.

pub mod cat;
pub mod cp;
pub mod demo;
pub mod export;
pub mod import;
pub mod inspect;
pub mod pack;
pub mod store;
pub mod unpack;
pub mod verify;
pub mod wal;
