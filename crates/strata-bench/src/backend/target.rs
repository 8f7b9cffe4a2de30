//! [`Target`]: the server a remote benchmark runs against, from `--target grpc://HOST:PORT` or
//! `--target redis://HOST:PORT`.

use std::fmt;
use std::str::FromStr;

/// A server under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Strata's gRPC API at `host:port`.
    Grpc(String),
    /// A Redis-protocol server (Strata's RESP port, or redis-server) at `host:port`.
    Redis(String),
}

impl Target {
    /// The backend's name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Grpc(_) => "grpc",
            Target::Redis(_) => "redis",
        }
    }

    /// The `host:port` part.
    pub fn addr(&self) -> &str {
        match self {
            Target::Grpc(a) | Target::Redis(a) => a,
        }
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("{s:?} has no scheme: use grpc://HOST:PORT or redis://HOST:PORT")
        })?;
        let addr = rest.trim_end_matches('/');
        if addr.is_empty() || !addr.contains(':') {
            return Err(format!("{s:?} needs HOST:PORT after the scheme"));
        }
        match scheme {
            "grpc" => Ok(Target::Grpc(addr.to_owned())),
            "redis" => Ok(Target::Redis(addr.to_owned())),
            other => Err(format!(
                "unknown scheme {other:?}: use grpc://HOST:PORT or redis://HOST:PORT"
            )),
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
}
