//! Printing to standard output for command-line programs that may be piped into `head`.
//!
//! `println!` panics when the reader of a pipe has gone (`dataset_stats ... | head -1`).
//! [`outln!`](crate::outln) and [`out!`](crate::out) write the same text but treat a closed
//! output pipe as the normal end of the program: it exits quietly with status 0. Any other
//! write error is reported on stderr and exits with status 1.

use std::fmt;
use std::io::{self, Write};

/// Writes `args` (and a newline when `newline`) to standard output; see the module doc.
pub fn write(args: fmt::Arguments<'_>, newline: bool) {
    let mut out = io::stdout().lock();
    let result = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = result {
        end_on(&e);
    }
}

/// Flushes standard output; see the module doc for what happens on errors.
pub fn flush() {
    if let Err(e) = io::stdout().lock().flush() {
        end_on(&e);
    }
}

/// Whether an error means that the reader of the output has gone.
pub fn is_closed_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

fn end_on(e: &io::Error) -> ! {
    if is_closed_pipe(e) {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1);
}

/// `println!` that ends the program quietly on a closed output pipe ([`crate::stdout`]).
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*), true)
    };
}

/// `print!` that ends the program quietly on a closed output pipe ([`crate::stdout`]).
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*), false)
    };
}
