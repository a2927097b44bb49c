//! Errors that stop the proxy from starting or from applying a config. Request-time failures
//! are not errors here: they are SPEC §7 codes answered to the client (see `pipeline`).

use std::fmt;

/// Why the proxy could not start, bind, or apply a config.
#[derive(Debug)]
pub enum ProxyError {
    /// The config is valid YAML but cannot run (bad endpoint address, impossible policy).
    Config(String),
    /// The config file could not be loaded; the messages name file, line and column.
    Load(Vec<String>),
    /// A listener could not be bound.
    Bind {
        /// The listener's name.
        listener: String,
        /// The address it asked for.
        address: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A TLS certificate or key could not be used.
    Tls(String),
    /// The proxy was built outside a tokio runtime.
    NoRuntime,
    /// Another I/O failure (signals, files).
    Io(String),
    /// The registry connection cannot be set up (an unusable URL, an embedded registry that
    /// cannot start). An unreachable registry is not an error: the proxy runs on its local
    /// breakers until it answers.
    Registry(String),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::Config(m) => write!(f, "config cannot run: {m}"),
            ProxyError::Load(errors) => {
                write!(f, "config is invalid:")?;
                for e in errors {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
            ProxyError::Bind {
                listener,
                address,
                source,
            } => write!(
                f,
                "listener `{listener}` cannot bind {address}: {source}; pick a free port or \
                 stop the process holding it"
            ),
            ProxyError::Tls(m) => write!(f, "TLS: {m}"),
            ProxyError::NoRuntime => {
                f.write_str("the proxy must be started inside a tokio runtime")
            }
            ProxyError::Io(m) => f.write_str(m),
            ProxyError::Registry(m) => write!(f, "registry: {m}"),
        }
    }
}

impl std::error::Error for ProxyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProxyError::Bind { source, .. } => Some(source),
            _ => None,
        }
    }
}
