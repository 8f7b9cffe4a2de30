//! The `strata` binary. The embedded REPL lands with the CLI issue; until then it says so.

fn main() -> anyhow::Result<()> {
    println!("strata: the REPL is not built yet");
    Ok(())
}
