//! What identifies the container an instance runs: the spec hash, and the
//! names derived from a desired proc.

use lain_store::{DesiredProc, HealthCheck, SecretRef};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The container-relevant fields of a desired proc. Two desired procs
/// with the same hash run identical containers, so a change that leaves
/// it alone (instances, mountpoints, `https_only`, a new generation from
/// a scale) needs no rollout.
#[derive(Serialize)]
struct SpecFields<'a> {
    image: &'a str,
    cmd: &'a [String],
    entrypoint: &'a [String],
    user: &'a Option<String>,
    workdir: &'a Option<String>,
    cpu_millis: u64,
    memory_bytes: u64,
    env: &'a std::collections::BTreeMap<String, String>,
    secrets: &'a [SecretRef],
    port: Option<u16>,
    healthcheck: &'a Option<HealthCheck>,
    volumes: &'a [String],
    labels: &'a std::collections::BTreeMap<String, String>,
    /// A restore rolls the proc out like a deploy.
    #[serde(skip_serializing_if = "Option::is_none")]
    restore: &'a Option<lain_store::RestoreRequest>,
}

/// A short, stable hash of what the proc's containers run.
pub fn spec_hash(d: &DesiredProc) -> String {
    let fields = SpecFields {
        image: &d.image,
        cmd: &d.cmd,
        entrypoint: &d.entrypoint,
        user: &d.user,
        workdir: &d.workdir,
        cpu_millis: d.cpu_millis,
        memory_bytes: d.memory_bytes,
        env: &d.env,
        secrets: &d.secrets,
        port: d.port,
        healthcheck: &d.healthcheck,
        volumes: &d.volumes,
        labels: &d.labels,
        restore: &d.restore,
    };
    // Serializing plain strings, numbers and BTreeMaps cannot fail.
    let bytes = serde_json::to_vec(&fields).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a proc's instances keep their node: `stateful` ones, and any
/// with volumes (their data is there). A rollout stops the old version
/// first and starts the new one on the same node.
pub fn pinned(d: &DesiredProc) -> bool {
    d.stateful || !d.volumes.is_empty()
}

/// The observed key segment of instance `n` created for `generation`.
pub fn slot(instance: u32, generation: u64) -> String {
    format!("{instance}-{generation}")
}

/// The container name of a slot. Deterministic, so that a create that
/// deployd did not record (it died in between) conflicts instead of
/// making a second container, and the existing one is adopted.
pub fn container_name(app: &str, proc: &str, slot: &str) -> String {
    format!("lain.{app}.{proc}.{slot}")
}

/// The Docker network every container of `app` joins on a node.
pub fn network_name(app: &str) -> String {
    format!("lain-{app}")
}

/// The named Docker volume holding `path` of instance `n`: named by
/// instance, not generation, so that a new version of a stateful instance
/// finds its data on the same node.
pub fn volume_name(app: &str, proc: &str, instance: u32, path: &str) -> String {
    let mut clean: String = path
        .trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if clean.is_empty() {
        clean.push_str("root");
    }
    format!("lain.{app}.{proc}.{instance}.{clean}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use lain_store::ProcType;

    pub(crate) fn desired() -> DesiredProc {
        DesiredProc {
            app: "hello".into(),
            proc: "web".into(),
            proc_type: ProcType::Web,
            release: "1-abc".into(),
            image: "reg/hello:release-1-abc".into(),
            instances: 2,
            cmd: vec![],
            entrypoint: vec![],
            user: None,
            workdir: None,
            cpu_millis: 0,
            memory_bytes: 32 << 20,
            env: Default::default(),
            secrets: vec![],
            port: Some(80),
            healthcheck: None,
            mountpoints: vec!["hello.example.com".into()],
            https_only: false,
            volumes: vec![],
            labels: Default::default(),
            kill_timeout_secs: 10,
            setup_time_secs: 0,
            stateful: false,
            filters: vec![],
            services: vec![],
            backups: vec![],
            restore: None,
            portal: None,
            generation: 1,
        }
    }

    #[test]
    fn scale_and_routing_changes_keep_the_hash() {
        let a = desired();
        let mut b = a.clone();
        b.instances = 5;
        b.generation = 9;
        b.mountpoints.push("other.example.com".into());
        b.https_only = true;
        assert_eq!(spec_hash(&a), spec_hash(&b));
        let mut c = a.clone();
        c.image = "reg/hello:release-2-def".into();
        assert_ne!(spec_hash(&a), spec_hash(&c));
        let mut d = a.clone();
        d.env.insert("K".into(), "v".into());
        assert_ne!(spec_hash(&a), spec_hash(&d));
        assert_eq!(spec_hash(&a).len(), 16);
    }

    #[test]
    fn names() {
        assert_eq!(slot(3, 12), "3-12");
        assert_eq!(
            container_name("hello", "web", "3-12"),
            "lain.hello.web.3-12"
        );
        assert_eq!(
            volume_name("db", "worker", 1, "/var/lib/data"),
            "lain.db.worker.1.var_lib_data"
        );
        assert_eq!(volume_name("db", "worker", 1, "/"), "lain.db.worker.1.root");
    }
}
