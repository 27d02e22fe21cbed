//! Where benchmarks put their files: `CAIRN_BENCH_DIR`, else the
//! workspace's `target/` (the project's own file system, not a tmpfs).

use std::path::PathBuf;

pub fn bench_dir() -> PathBuf {
    match std::env::var_os("CAIRN_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let cwd = std::env::current_dir().unwrap();
            cwd.ancestors().map(|a| a.join("target")).find(|t| t.is_dir()).unwrap_or(cwd)
        }
    }
}
