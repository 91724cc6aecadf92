//! The `franchise` command-line program: parses flags, loads settings, runs one command.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_logging(args.verbose, args.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        // The reader of our output went away (`franchise show 1 | head`): nothing to say.
        Err(e) if cli::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            if cli::is_usage_error(&e) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The error and its causes, each said once: many of our errors already carry their cause's
/// words (`store query failed: {cause}`), and `{:#}` would repeat them after it.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let said = cause.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("store query failed: {0}")]
    struct Wrapped(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let full = std::io::Error::other("database or disk is full");
        let e = anyhow::Error::new(Wrapped(full)).context("the store stopped");
        assert_eq!(
            error_text(&e),
            "the store stopped: store query failed: database or disk is full"
        );
        let plain = anyhow::anyhow!("no cause");
        assert_eq!(error_text(&plain), "no cause");
    }
}
