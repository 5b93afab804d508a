//! `emeterai`: the command line. Argument parsing and output only; the rules live in the
//! `emeterai` library.
//!
//! Exit codes (API.md): 0 success, 1 any failure other than a rejection (bad arguments, I/O,
//! config), 3 `audit` found an invariant violated or `redrive` left messages on the queue, 2 the
//! document was rejected (`rejected: <code>: <message>` on stderr; for `verify`, also when it
//! found no e-Meterai or one that does not hold). clap's own exit code for a usage
//! error is 2, which would read as a rejection here, so usage errors are mapped to 1.

mod audit_cmd;
mod issuer_cmd;
mod redrive_cmd;
mod stamp_cmd;
mod token_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Stamps, verifies and administers e-Meterai, Indonesia's electronic stamp duty.
#[derive(Parser)]
#[command(name = "emeterai", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stamps a PDF offline with the same code the stamp function uses.
    Stamp(stamp_cmd::StampArgs),
    /// Prints each e-Meterai in a PDF, whether its signature holds, and its serial.
    Verify(verify_cmd::VerifyArgs),
    /// Prints a bearer token for the local stack.
    Token(token_cmd::TokenArgs),
    /// Checks every ledger invariant over the whole table (and the stamped objects, with EMETERAI_BUCKET).
    Audit(audit_cmd::AuditArgs),
    /// The issuer key in AWS KMS: `issuer csr` prints a certification request for your CA.
    Issuer(issuer_cmd::IssuerArgs),
    /// Hands the stamp function's dead letters (its on-failure queue) back to it, deleting each one it then stamps.
    Redrive(redrive_cmd::RedriveArgs),
    /// Prints a shell completion script (for example: `emeterai completions bash > /etc/bash_completion.d/emeterai`).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

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
    /// `audit` found at least one invariant violated: exit 3.
    Violated,
    /// `redrive` left at least one message on the queue (its redrive failed, or it is not a
    /// dead letter of the stamp function): exit 3.
    Left,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // --help and --version are answers, not failures.
            let _ = error.print();
            return if error.use_stderr() { ExitCode::from(1) } else { ExitCode::SUCCESS };
        }
    };
    let result = match cli.command {
        Command::Stamp(args) => stamp_cmd::run(args),
        Command::Verify(args) => verify_cmd::run(args),
        Command::Token(args) => token_cmd::run(args),
        Command::Audit(args) => audit_cmd::run(args),
        Command::Issuer(args) => issuer_cmd::run(args),
        Command::Redrive(args) => redrive_cmd::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "emeterai", &mut std::io::stdout());
            Ok(Outcome::Success)
        }
    };
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::from(2),
        Ok(Outcome::Violated | Outcome::Left) => ExitCode::from(3),
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
