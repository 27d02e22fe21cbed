//! Progress bars on stderr, shown only when stderr is a terminal.

use std::io::IsTerminal;
use std::ops::Deref;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that erases itself when dropped, so an error message
/// printed after a failure starts on a clean line.
pub struct Bar(ProgressBar);

impl Deref for Bar {
    type Target = ProgressBar;

    fn deref(&self) -> &ProgressBar {
        &self.0
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// A byte-counting bar of `total` bytes labelled `label`; hidden when stderr
/// is not a terminal so logs and pipes stay clean.
pub fn bytes_bar(total: u64, label: &str) -> Bar {
    if !std::io::stderr().is_terminal() {
        return Bar(ProgressBar::hidden());
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = "{msg} [{bar:32}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_string());
    Bar(bar)
}

/// A bar over `total` steps, starting at `done`, with a message (say, the
/// current loss); hidden when stderr is not a terminal.
pub fn steps_bar(done: u64, total: u64) -> Bar {
    if !std::io::stderr().is_terminal() {
        return Bar(ProgressBar::hidden());
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let template = "{msg} [{bar:32}] step {pos}/{len} {per_sec} eta {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_position(done);
    // The steps done before a resume say nothing about this run's speed.
    bar.reset_eta();
    Bar(bar)
}
