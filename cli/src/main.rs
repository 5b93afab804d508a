//! `emeterai`: the command line. Argument parsing and output only; the rules live in the
//! `emeterai` library.
//!
//! Exit codes: 0 success, 1 any failure other than a rejection (bad arguments, I/O, config),
//! 2 the document was rejected (`rejected: <code>: <message>` on stderr; for `verify`, also
//! when it found no e-Meterai or one that does not hold).

mod stamp_cmd;
mod token_cmd;
mod verify_cmd;

use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage:
  emeterai stamp INPUT --output OUTPUT --serial SN [--page N] [--x-mm X --y-mm Y] [--at RFC3339] [--verify-base-url URL] [--json]
  emeterai verify FILE [--json]
  emeterai token --sub ACCOUNT [--ttl SECONDS]";

/// A failure other than a rejection: printed as `error: ...`, exit 1.
pub struct Failure(pub String);

impl<T: std::fmt::Display> From<T> for Failure {
    fn from(error: T) -> Self {
        Failure(error.to_string())
    }
}

/// How a subcommand ended, when it did not fail.
pub enum Outcome {
    Success,
    /// A rejection or an invalid verification: exit 2.
    Refused,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("stamp") => stamp_cmd::run(&args[1..]),
        Some("verify") => verify_cmd::run(&args[1..]),
        Some("token") => token_cmd::run(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(Outcome::Success)
        }
        Some(other) => Err(Failure(format!("unknown command {other:?}\n{USAGE}"))),
        None => Err(Failure(USAGE.to_owned())),
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(2),
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Splits `--name value` options from positional arguments. `flags` take no value.
pub struct Args {
    pub positional: Vec<String>,
    options: Vec<(String, String)>,
    flags: Vec<String>,
}

impl Args {
    pub fn parse(raw: &[String], valued: &[&str], flags: &[&str]) -> Result<Args, Failure> {
        let mut args = Args { positional: Vec::new(), options: Vec::new(), flags: Vec::new() };
        let mut iter = raw.iter();
        while let Some(arg) = iter.next() {
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (name, None),
                };
                if flags.contains(&name) && inline.is_none() {
                    args.flags.push(name.to_owned());
                } else if valued.contains(&name) {
                    let value = match inline {
                        Some(v) => v,
                        None => iter.next().ok_or_else(|| Failure(format!("--{name} needs a value")))?.clone(),
                    };
                    if args.options.iter().any(|(n, _)| n == name) {
                        return Err(Failure(format!("--{name} given twice")));
                    }
                    args.options.push((name.to_owned(), value));
                } else {
                    return Err(Failure(format!("unknown option --{name}\n{USAGE}")));
                }
            } else {
                args.positional.push(arg.clone());
            }
        }
        Ok(args)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.options.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}
