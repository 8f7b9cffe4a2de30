//! `strata connect ADDR`: the REPL of the embedded store, over a server's gRPC API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use strata_client::{ClientOptions, TlsOptions};

use crate::repl;
use crate::repl::remote::Remote;

/// Flags of `strata connect`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// The server's gRPC address: `host:port`, or an `http://` / `https://` URI.
    #[arg(value_name = "ADDR")]
    pub addr: String,

    /// Access token, when the server requires one.
    #[arg(long, env = "STRATA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Connect with TLS, trusting this CA certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// Name to check the server's certificate against (default: the host in ADDR).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_domain: Option<String>,

    /// Seconds each request may take before it is reported as failed.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub timeout_secs: u64,
}

impl ConnectArgs {
    /// The client options these flags ask for.
    pub fn client_options(&self) -> anyhow::Result<ClientOptions> {
        let tls = match &self.tls_ca {
            Some(path) => Some(TlsOptions {
                ca_pem: Some(
                    std::fs::read(path)
                        .with_context(|| format!("cannot read the CA file {}", path.display()))?,
                ),
                domain: self.tls_domain.clone(),
            }),
            None => None,
        };
        Ok(ClientOptions {
            request_timeout: Duration::from_secs(self.timeout_secs.max(1)),
            token: self.token.clone(),
            tls,
            ..ClientOptions::default()
        })
    }
}

/// Connects and runs the REPL until `EXIT` or end of input.
pub fn run(args: &ConnectArgs) -> anyhow::Result<()> {
    let remote = Remote::connect(&args.addr, args.client_options()?)?;
    tracing::info!(addr = %args.addr, "connected");
    let banner = format!("connected to {}, {}", args.addr, remote.describe());
    repl::run(remote, &banner)
}
