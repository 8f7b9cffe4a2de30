//! Generates the `strata.v1` messages, clients and servers from `proto/strata.proto` (and the
//! internal `strata.raft.v1` transport from `proto/raft.proto`) with the
//! pure-Rust `protox` compiler, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = "../../proto";
    let protos = [format!("{dir}/strata.proto"), format!("{dir}/raft.proto")];
    let fds = protox::compile(&protos, [dir])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    Ok(())
}
