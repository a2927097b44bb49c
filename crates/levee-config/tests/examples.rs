//! The example files in `examples/` load, and say what they claim to.

use levee_config::{load, Config};
use levee_core::Criticality;
use std::path::PathBuf;
use std::time::Duration;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn load_example(name: &str) -> Config {
    load(example(name)).unwrap_or_else(|e| panic!("{name} must load:\n{e}"))
}

#[test]
fn levee_yaml_loads() {
    let config = load_example("levee.yaml");
    assert_eq!(config.service, "checkout");
    assert_eq!(
        config.upstreams["inventory"].endpoints,
        ["127.0.0.1:7001", "127.0.0.1:7002"]
    );
    assert!(config.upstreams.contains_key("recommendations"));
    let inventory = config
        .routes
        .iter()
        .find(|r| r.name.as_deref() == Some("inventory"))
        .expect("inventory route");
    assert_eq!(inventory.timeout, Some(Duration::from_millis(800)));
    assert_eq!(inventory.criticality, Criticality::Critical);
    assert_eq!(inventory.retry.max_attempts, 3);
    assert!(inventory.fallback.stale_if_error.is_some());
    let recs = config
        .routes
        .iter()
        .find(|r| r.upstream == "recommendations")
        .expect("recommendations route");
    assert_eq!(recs.shed_at_level, Some(1));
    assert_eq!(
        recs.fallback.static_response.as_ref().map(|s| s.status),
        Some(200)
    );
}

#[test]
fn minimal_yaml_loads_with_defaults() {
    let config = load_example("minimal.yaml");
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.service, "levee");
    assert_eq!(config.admin, levee_config::AdminConfig::default());
    assert_eq!(config.routes[0].name_or_default(0), "route1");
}

#[test]
fn loading_twice_gives_equal_configs() {
    // Reloads compare configs; an unchanged file must compare equal.
    let a = load_example("levee.yaml");
    let b = load_example("levee.yaml");
    assert_eq!(a, b);
    assert!(levee_config::diff(&a, &b).is_empty());
}
