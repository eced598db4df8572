//! The `hookyard` binary: parses the command line and hands over to [`hookyard::cli`].

fn main() -> std::process::ExitCode {
    hookyard::cli::main()
}
