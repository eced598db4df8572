//! The `hookyard` binary: parses the command line and hands over to [`hookyard::cli`].

/// mimalloc instead of glibc's allocator: the request, plugin and store threads each
/// allocate and free many small buffers per event, and glibc's arenas spent ~15% of the
/// CPU on it under load (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookyard::cli::main()
}
