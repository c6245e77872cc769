//! The registry: a push from a root-namespace engine and a pull on a
//! namespace node through the bridge address; and a loopback registry that
//! needs no insecure-registry flag.

use lain_testkit::{
    import_base_image, import_base_image_all, Bridge, DockerNodes, Dockerd, DockerdOptions,
    NodesOptions, Registry, BASE_IMAGE,
};

#[test]
fn an_image_pushed_from_one_engine_is_pulled_on_a_namespace_node() {
    let nodes = DockerNodes::start(1, NodesOptions::default()).expect("node starts");
    let registry = Registry::start_on(nodes.bridge_addr()).expect("registry on the bridge");
    assert_eq!(registry.addr().ip(), nodes.bridge_addr());

    // A plain-HTTP registry off loopback must be named to the pusher.
    let builder = Dockerd::start_with(
        DockerdOptions::default()
            .bridge(Bridge::None)
            .insecure_registry(registry.host()),
    )
    .expect("builder dockerd starts");
    import_base_image(&builder).expect("import on the builder");
    let image = registry.image("lain-busybox:kit");
    builder.docker(&["tag", BASE_IMAGE, &image]).expect("tag");
    builder
        .docker(&["push", &image])
        .expect("push to the bridge registry");
    assert_eq!(
        registry.catalog().expect("catalog"),
        vec!["lain-busybox".to_owned()]
    );

    // The node trusts its test subnet by default, so it pulls over HTTP.
    let node = nodes.node(0);
    node.docker(&["pull", &image]).expect("pull on the node");
    let out = node
        .docker(&["run", "--rm", &image, "echo", "pulled on", node.name()])
        .expect("run the pulled image");
    assert_eq!(out.trim(), format!("pulled on {}", node.name()));
}

#[test]
fn a_loopback_registry_needs_no_flag_and_a_node_without_trust_is_refused() {
    let registry = Registry::start().expect("loopback registry");
    assert!(registry.addr().ip().is_loopback());
    let engine = Dockerd::start_with(DockerdOptions::default().bridge(Bridge::None))
        .expect("dockerd starts");
    import_base_image(&engine).expect("import");
    let image = registry.image("base:1");
    engine.docker(&["tag", BASE_IMAGE, &image]).expect("tag");
    engine.docker(&["push", &image]).expect("push to loopback");
    engine.docker(&["rmi", &image]).expect("rmi");
    engine
        .docker(&["pull", &image])
        .expect("pull from loopback");

    // Without --insecure-registry, a node refuses a plain-HTTP registry on
    // the bridge: the flag is what makes the first test work.
    let opts = NodesOptions {
        trust_network: false,
        ..NodesOptions::default()
    };
    let nodes = DockerNodes::start(1, opts).expect("node starts");
    import_base_image_all(&nodes).expect("import");
    let bridge_registry = Registry::start_on(nodes.bridge_addr()).expect("registry");
    let err = nodes
        .node(0)
        .docker(&["pull", &bridge_registry.image("nothing:1")])
        .expect_err("an untrusted HTTP registry is refused");
    assert!(
        err.to_string().contains("https") || err.to_string().contains("HTTP"),
        "{err}"
    );
}
