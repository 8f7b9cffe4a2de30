//! [`Target`]: the server a remote benchmark runs against, from `--target grpc://HOST:PORT`,
//! `--target redis://HOST:PORT` or `--target etcd://HOST:PORT`. A gRPC or etcd target may list
//! several members of a cluster (`grpc://A:1,B:2,C:3`): client threads are spread over them.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Strata's gRPC API at `host:port` (or several, comma-separated).
    Grpc(String),
    /// A Redis-protocol server (Strata's RESP port, or redis-server) at `host:port`.
    Redis(String),
    /// An etcd v3 cluster's gRPC API at `host:port` (or several, comma-separated).
    Etcd(String),
}

impl Target {
    /// The backend's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Grpc(_) => "grpc",
            Target::Redis(_) => "redis",
            Target::Etcd(_) => "etcd",
        }
    }

    /// The `host:port` part, as given (comma-separated when it lists several members).
    pub fn addr(&self) -> &str {
        match self {
            Target::Grpc(a) | Target::Redis(a) | Target::Etcd(a) => a,
        }
    }

    /// Every `host:port` the target lists.
    pub fn addrs(&self) -> Vec<String> {
        self.addr().split(',').map(str::to_owned).collect()
    }
}

/// A cluster's member addresses, handed out round-robin: the `grpc` and `etcd` backends give
/// each client thread the next one.
#[derive(Debug)]
pub(crate) struct Endpoints {
    addrs: Vec<String>,
    next: AtomicUsize,
}

impl Endpoints {
    /// Round-robin over `addrs`, which must not be empty (a parsed [`Target`] never is).
    pub(crate) fn new(addrs: &[String]) -> Self {
        Endpoints {
            addrs: addrs.to_vec(),
            next: AtomicUsize::new(0),
        }
    }

    /// The address for the next client.
    pub(crate) fn next(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        &self.addrs[i % self.addrs.len()]
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const SCHEMES: &str = "grpc://HOST:PORT, redis://HOST:PORT or etcd://HOST:PORT";
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("{s:?} has no scheme: use {SCHEMES}"))?;
        let addr = rest.trim_end_matches('/');
        if addr.split(',').any(|a| a.is_empty() || !a.contains(':')) {
            return Err(format!("{s:?} needs HOST:PORT after the scheme"));
        }
        let several = addr.contains(',');
        match scheme {
            "grpc" => Ok(Target::Grpc(addr.to_owned())),
            "etcd" => Ok(Target::Etcd(addr.to_owned())),
            "redis" if several => Err(format!("{s:?}: a redis target takes one HOST:PORT")),
            "redis" => Ok(Target::Redis(addr.to_owned())),
            other => Err(format!("unknown scheme {other:?}: use {SCHEMES}")),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.name(), self.addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_schemes_and_refuses_the_rest() {
        assert_eq!(
            "grpc://127.0.0.1:7400".parse(),
            Ok(Target::Grpc("127.0.0.1:7400".into()))
        );
        let r: Target = "redis://localhost:6380/".parse().unwrap();
        assert_eq!(r, Target::Redis("localhost:6380".into()));
        assert_eq!(r.to_string(), "redis://localhost:6380");
        assert!("127.0.0.1:7400".parse::<Target>().is_err());
        assert!("http://127.0.0.1:7400".parse::<Target>().is_err());
        assert!("grpc://".parse::<Target>().is_err());
    }

    #[test]
    fn cluster_targets_list_their_members() {
        let t: Target = "etcd://127.0.0.1:2379,127.0.0.1:22379".parse().unwrap();
        assert_eq!(t.addrs(), ["127.0.0.1:2379", "127.0.0.1:22379"]);
        assert_eq!(t.to_string(), "etcd://127.0.0.1:2379,127.0.0.1:22379");
        let g: Target = "grpc://a:1,b:2".parse().unwrap();
        assert_eq!(g.addrs(), ["a:1", "b:2"]);
        assert!("grpc://a:1,".parse::<Target>().is_err());
        assert!("redis://a:1,b:2".parse::<Target>().is_err());
    }
}
