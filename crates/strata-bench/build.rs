//! Generates a client for the part of etcd's KV API that the `etcd` backend calls, from
//! `proto/etcd_kv.proto`, with the pure-Rust `protox` compiler (no system `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/etcd_kv.proto";
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={proto}");
    Ok(())
}
