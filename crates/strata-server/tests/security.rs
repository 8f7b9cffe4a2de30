//! Access token and TLS: gRPC calls without or with a wrong token are refused
//! (`UNAUTHENTICATED`) and accepted with the right one; RESP commands get `NOAUTH` until `AUTH`
//! succeeds; TLS on gRPC and RESP works with a trusted certificate and plain-text clients are
//! refused; a cluster's members send each other the token and talk TLS when configured.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;

use common::{RawClient, TestServer, encode};
use strata_client::{Client, ClientOptions, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_token() {
    let s = TestServer::start_with(|c| c.token = Some("s3cret".into())).await;
    let addr = s.addrs.grpc.to_string();
    let none = Client::connect(&addr, ClientOptions::default())
        .await
        .unwrap();
    let e = none.get(b"k").await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::Unauthenticated));
    let e = none.status().await.unwrap_err();
    assert_eq!(e.code(), Some(tonic::Code::Unauthenticated));

    let wrong = ClientOptions {
        token: Some("guess".into()),
        ..ClientOptions::default()
    };
    let wrong = Client::connect(&addr, wrong).await.unwrap();
    assert_eq!(
        wrong.put(b"k", b"v").await.unwrap_err().code(),
        Some(tonic::Code::Unauthenticated)
    );

    let right = ClientOptions {
        token: Some("s3cret".into()),
        ..ClientOptions::default()
    };
    let right = Client::connect(&addr, right).await.unwrap();
    right.put(b"k", b"v").await.unwrap();
    assert_eq!(right.get(b"k").await.unwrap(), Some(b"v".to_vec()));
    right.status().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resp_token() {
    let s = TestServer::start_with(|c| c.token = Some("s3cret".into())).await;
    let mut c = RawClient::connect(s.addrs.redis).await;
    c.cmd(&[b"GET", b"k"]).await;
    assert_eq!(c.reply_str().await, "-NOAUTH Authentication required.\r\n");
    c.cmd(&[b"AUTH", b"wrong"]).await;
    assert!(c.reply_str().await.starts_with("-WRONGPASS"));
    c.cmd(&[b"SET", b"k", b"v"]).await;
    assert!(c.reply_str().await.starts_with("-NOAUTH"));
    c.cmd(&[b"AUTH", b"s3cret"]).await;
    assert_eq!(c.reply_str().await, "+OK\r\n");
    c.cmd(&[b"SET", b"k", b"v"]).await;
    assert_eq!(c.reply_str().await, "+OK\r\n");
    c.cmd(&[b"AUTH", b"default", b"s3cret"]).await;
    assert_eq!(c.reply_str().await, "+OK\r\n");

    // The redis crate sends AUTH from the URL's password.
    let url = format!("redis://:s3cret@{}/", s.addrs.redis);
    let mut r = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(v, "v");

    // Without a token configured, AUTH is an error as in Redis.
    let open = TestServer::start().await;
    let mut c = RawClient::connect(open.addrs.redis).await;
    c.cmd(&[b"AUTH", b"x"]).await;
    assert!(
        c.reply_str()
            .await
            .starts_with("-ERR AUTH <password> called without")
    );
}

struct Certs {
    _dir: tempfile::TempDir,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    cert_pem: String,
}

fn make_certs() -> Certs {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let cert_pem = ck.cert.pem();
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    Certs {
        _dir: dir,
        cert,
        key,
        cert_pem,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_tls() {
    let certs = make_certs();
    let s = TestServer::start_with(|c| {
        c.tls = Some(strata_server::TlsConfig {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ca: None,
        });
    })
    .await;
    let addr = s.addrs.grpc.to_string();
    let opts = ClientOptions {
        tls: Some(TlsOptions {
            ca_pem: Some(certs.cert_pem.clone().into_bytes()),
            domain: Some("localhost".into()),
        }),
        ..ClientOptions::default()
    };
    let c = Client::connect(&addr, opts).await.unwrap();
    c.put(b"k", b"v").await.unwrap();
    assert_eq!(c.get(b"k").await.unwrap(), Some(b"v".to_vec()));

    // A plain-text client cannot talk to the TLS port.
    let plain = ClientOptions {
        max_retries: 0,
        connect_timeout: std::time::Duration::from_secs(2),
        request_timeout: std::time::Duration::from_secs(2),
        ..ClientOptions::default()
    };
    match Client::connect(&addr, plain).await {
        Err(_) => {}
        Ok(c) => assert!(c.get(b"k").await.is_err()),
    }
    // A client that does not trust the certificate is refused.
    let untrusted = ClientOptions {
        tls: Some(TlsOptions {
            ca_pem: Some(make_certs().cert_pem.into_bytes()),
            domain: Some("localhost".into()),
        }),
        max_retries: 0,
        ..ClientOptions::default()
    };
    match Client::connect(&addr, untrusted).await {
        Err(_) => {}
        Ok(c) => assert!(c.get(b"k").await.is_err()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resp_tls() {
    let certs = make_certs();
    let s = TestServer::start_with(|c| {
        c.tls = Some(strata_server::TlsConfig {
            cert: certs.cert.clone(),
            key: certs.key.clone(),
            ca: None,
        });
    })
    .await;
    let mut roots = rustls::RootCertStore::empty();
    let der = rustls::pki_types::CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap();
    roots.add(der).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(s.addrs.redis).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let mut req = encode(&[b"SET", b"k", b"v"]);
    req.extend(encode(&[b"GET", b"k"]));
    tls.write_all(&req).await.unwrap();
    let mut got = Vec::new();
    while got.len() < b"+OK\r\n$1\r\nv\r\n".len() {
        let mut buf = [0u8; 64];
        let n = tls.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"+OK\r\n$1\r\nv\r\n");

    // Plain text on the TLS port gets no RESP reply.
    let mut plain = RawClient::connect(s.addrs.redis).await;
    plain.cmd(&[b"PING"]).await;
    assert!(plain.reply().await.is_none());
}

use rustls::pki_types::pem::PemObject as _;

/// Three free loopback ports, and the cluster members they make (ids 1, 2, 3).
fn cluster_ports() -> (
    Vec<std::net::SocketAddr>,
    Vec<strata_server::config::PeerConfig>,
) {
    // Free ports first: every node's config names all members' addresses.
    let mut ports = Vec::new();
    for _ in 0..3 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ports.push(l.local_addr().unwrap());
    }
    let peers = ports
        .iter()
        .enumerate()
        .map(|(i, a)| strata_server::config::PeerConfig {
            id: i as u64 + 1,
            addr: a.to_string(),
        })
        .collect();
    (ports, peers)
}

/// Starts a 3-node cluster (8 partitions) on `ports`, each node's config adjusted by `tweak`.
async fn start_cluster(
    ports: &[std::net::SocketAddr],
    peers: &[strata_server::config::PeerConfig],
    tweak: impl Fn(&mut strata_server::ServerConfig),
) -> Vec<TestServer> {
    let mut nodes = Vec::new();
    for (i, addr) in ports.iter().enumerate() {
        nodes.push(
            TestServer::start_with(|c| {
                c.grpc_addr = *addr;
                c.cluster = Some(strata_server::config::ClusterConfig {
                    node_id: i as u64 + 1,
                    peers: peers.to_vec(),
                    partitions: 8,
                    ..Default::default()
                });
                tweak(c);
            })
            .await,
        );
    }
    nodes
}

/// Writes and reads back 32 keys through `client`, waiting (at most 20 s) for leaders: they
/// are elected only if the members can call each other. A read is retried like a write: on a
/// loaded machine a young cluster may change a partition's leader between the two (the read is
/// then refused as leaderless, which the client's few quick retries do not outlast).
async fn write_through(client: &Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let pause = || async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for i in 0..32 {
        let key = format!("key{i}");
        while let Err(e) = client.put(key.as_bytes(), b"v").await {
            assert!(
                std::time::Instant::now() < deadline,
                "no leader elected: {e}"
            );
            pause().await;
        }
        let value = loop {
            match client.get(key.as_bytes()).await {
                Ok(value) => break value,
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline
                            && e.code() == Some(tonic::Code::Unavailable),
                        "read of {key} failed: {e}"
                    );
                    pause().await;
                }
            }
        };
        assert_eq!(value, Some(b"v".to_vec()));
    }
}

/// A 3-node cluster whose nodes require a token: the nodes' own Raft traffic carries it
/// (leaders get elected, writes reach leaders on other nodes through forwarding), and a Raft
/// RPC without it is refused, so the token cannot be bypassed through the Raft service.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_peers_send_the_token_and_raft_rpcs_require_it() {
    use strata_proto::raft_v1::RaftRequest;
    use strata_proto::raft_v1::raft_client::RaftClient;

    let (ports, peers) = cluster_ports();
    let nodes = start_cluster(&ports, &peers, |c| c.token = Some("s3cret".into())).await;
    // Through node 1 only (no routing to leaders): writes of keys led by the other nodes are
    // forwarded to them over the Raft service, with the token.
    let opts = ClientOptions {
        token: Some("s3cret".into()),
        route_to_leaders: false,
        ..ClientOptions::default()
    };
    let client = Client::connect(&ports[0].to_string(), opts).await.unwrap();
    write_through(&client).await;
    // A Forward RPC (a write) without the token is refused before it reaches the group.
    let mut raw = RaftClient::connect(format!("http://{}", ports[1]))
        .await
        .unwrap();
    let e = raw
        .forward(RaftRequest {
            group: 1,
            payload: vec![0],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    drop(nodes);
}

/// A 3-node cluster on TLS: the members call each other over TLS, checking certificates
/// against the cluster's CA (leaders get elected, writes are forwarded between nodes), a
/// plain-text Raft RPC gets nowhere, and a TLS node that is not given the CA refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_peers_talk_tls_checked_against_the_ca() {
    use strata_proto::raft_v1::RaftRequest;
    use strata_proto::raft_v1::raft_client::RaftClient;

    // One self-signed certificate, for every member's address, is the cluster's CA too.
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    let tls = strata_server::TlsConfig {
        cert: cert.clone(),
        key: key.clone(),
        ca: Some(cert.clone()),
    };

    let (ports, peers) = cluster_ports();
    let nodes = start_cluster(&ports, &peers, |c| c.tls = Some(tls.clone())).await;
    let opts = ClientOptions {
        route_to_leaders: false,
        tls: Some(TlsOptions {
            ca_pem: Some(ck.cert.pem().into_bytes()),
            domain: None,
        }),
        ..ClientOptions::default()
    };
    let client = Client::connect(&ports[0].to_string(), opts).await.unwrap();
    write_through(&client).await;

    // The Raft service is behind TLS like the rest of the port.
    let plain = async {
        let mut raw = RaftClient::connect(format!("http://{}", ports[1])).await?;
        raw.forward(RaftRequest {
            group: 1,
            payload: vec![0],
        })
        .await
        .map_err(Box::<dyn std::error::Error>::from)
    };
    let plain = tokio::time::timeout(std::time::Duration::from_secs(5), plain).await;
    assert!(
        !matches!(plain, Ok(Ok(_))),
        "a plain-text Raft RPC was answered"
    );
    drop(nodes);

    // TLS in cluster mode without the CA to check peers against is refused at start.
    let data = tempfile::tempdir().unwrap();
    let mut config = strata_server::ServerConfig::ephemeral(data.path());
    config.tls = Some(strata_server::TlsConfig { ca: None, ..tls });
    config.cluster = Some(strata_server::config::ClusterConfig {
        node_id: 1,
        peers: peers.clone(),
        partitions: 8,
        ..Default::default()
    });
    let e = strata_server::Server::bind(config).await.err().unwrap();
    assert!(e.to_string().contains("needs the CA"), "{e}");
}
