//! The marketd binary: parses the command line and hands over to the library.

/// mimalloc's thread-local heaps avoid the arena locks glibc's malloc contends on when a
/// request's allocations are freed on another runtime thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    marketd::cli::main()
}
