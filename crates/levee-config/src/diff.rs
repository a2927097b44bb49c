//! What changed between the running config and a newly loaded one, for reloads.
//!
//! A reload (SIGHUP, or the file changing) first calls [`crate::load`]; when that fails the
//! running config stays in force and the problems are logged (SPEC §12). When it succeeds,
//! [`diff`] tells the proxy which parts to rebuild: listeners and the admin address need new
//! sockets, an upstream whose block changed needs new policy state (its breaker window starts
//! afresh), an unchanged upstream keeps its state, and routes are cheap to swap whole.

use crate::model::Config;

/// The parts of a config that differ between two versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigDiff {
    /// `service` changed (the metrics label).
    pub service: bool,
    /// Any listener was added, removed or changed: sockets must be rebound.
    pub listeners: bool,
    /// The admin block changed (its address needs a new socket).
    pub admin: bool,
    /// The registry block changed.
    pub registry: bool,
    /// The client limits changed.
    pub limits: bool,
    /// The drain settings changed.
    pub drain: bool,
    /// The `faults` switches changed (route faults are part of `routes`).
    pub faults: bool,
    /// Upstreams only in the new config, by name.
    pub upstreams_added: Vec<String>,
    /// Upstreams only in the old config, by name.
    pub upstreams_removed: Vec<String>,
    /// Upstreams in both whose block differs, by name.
    pub upstreams_changed: Vec<String>,
    /// The route list differs (order included: the first match wins).
    pub routes: bool,
}

impl ConfigDiff {
    /// True when the two configs are equal.
    pub fn is_empty(&self) -> bool {
        *self == ConfigDiff::default()
    }

    /// True when sockets must be rebound (listeners or the admin address changed).
    pub fn rebinds(&self) -> bool {
        self.listeners || self.admin
    }
}

/// Compares two configs (see the module doc for how a reload uses the answer).
pub fn diff(old: &Config, new: &Config) -> ConfigDiff {
    let mut d = ConfigDiff {
        service: old.service != new.service,
        listeners: old.listeners != new.listeners,
        admin: old.admin != new.admin,
        registry: old.registry != new.registry,
        limits: old.limits != new.limits,
        drain: old.drain != new.drain,
        faults: old.faults != new.faults,
        routes: old.routes != new.routes,
        ..ConfigDiff::default()
    };
    for (name, upstream) in &new.upstreams {
        match old.upstreams.get(name) {
            None => d.upstreams_added.push(name.clone()),
            Some(before) if before != upstream => d.upstreams_changed.push(name.clone()),
            Some(_) => {}
        }
    }
    d.upstreams_removed = old
        .upstreams
        .keys()
        .filter(|name| !new.upstreams.contains_key(*name))
        .cloned()
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "listeners: [{address: 127.0.0.1:8080}]\nupstreams:\n  a: {endpoints: \
                        [127.0.0.1:7001]}\n  b: {endpoints: [127.0.0.1:7002]}\nroutes:\n  - \
                        {upstream: a}\n";

    #[test]
    fn equal_configs_differ_in_nothing() {
        let a = crate::parse(BASE, "a.yaml").expect("valid");
        let b = crate::parse(BASE, "b.yaml").expect("valid");
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn names_what_changed() {
        let old = crate::parse(BASE, "a.yaml").expect("valid");
        let new = crate::parse(
            "listeners: [{address: 127.0.0.1:8081}]\nupstreams:\n  a: {endpoints: \
             [127.0.0.1:7009]}\n  c: {endpoints: [127.0.0.1:7003]}\nroutes:\n  - {upstream: \
             a}\n",
            "a.yaml",
        )
        .expect("valid");
        let d = diff(&old, &new);
        assert!(d.listeners && d.rebinds() && !d.routes && !d.admin);
        assert_eq!(d.upstreams_added, ["c"]);
        assert_eq!(d.upstreams_removed, ["b"]);
        assert_eq!(d.upstreams_changed, ["a"]);
    }
}
