//! The commands: each reads what it needs from the API server, prints what upstream prints, and fails with the
//! text upstream prints before exiting with status 1. Rendering lives in [`crate::render`].
//!
//! Everything goes to stdout, errors included, because upstream's plugin prints its errors with `fmt.Printf`
//! and scripts written against it read them there.

pub mod config;
pub mod create;
pub mod delete;
pub mod describe;
pub mod hierarchy;
pub mod hrq;
pub mod set;
pub mod tree;

use std::io::Write;

/// A failed command: the text to print (without the final newline) before exiting with status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

/// Where a command prints. Each print is flushed, so the lines a command printed before failing precede its
/// error even through a pipe. Write errors (a closed pipe) are ignored: there is no one left to tell.
pub struct Out<'a> {
    sink: &'a mut dyn Write,
}

impl<'a> Out<'a> {
    /// Prints to `sink`.
    pub fn new(sink: &'a mut dyn Write) -> Self {
        Out { sink }
    }

    /// Prints `text` as is.
    pub fn print(&mut self, text: &str) {
        let _ = self.sink.write_all(text.as_bytes());
        let _ = self.sink.flush();
    }

    /// Prints `line` and a newline.
    pub fn line(&mut self, line: &str) {
        self.print(&format!("{line}\n"));
    }
}

/// Go's `%q` for the names HNC prints (DNS labels): the text in double quotes.
pub(crate) fn quoted(text: &str) -> String {
    format!("{text:?}")
}
