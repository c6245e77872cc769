//! Moving volume data through the Engine API against two real dockerds:
//! a tree with a large file, symlinks, hard links, a fifo, an empty dir,
//! odd modes and owners, long and non-ASCII names is exported from one
//! engine and imported into another, and the trees compare equal (contents,
//! types, modes, owners, link counts, mtimes, link targets). Then: merge
//! and replace imports, the errors for a volume in use, a busy helper, a
//! failing input, a non-tar, a missing volume or image, and that no helper
//! container is ever left behind (also when an export stream is dropped
//! half-way), with the garbage collector for those a crash leaves.

use std::time::{Duration, Instant};

use bytes::Bytes;
use deployd::docker::Engine;
use deployd::runtime::{
    RuntimeError, RuntimeTimeouts, LABEL_APP, LABEL_INSTANCE, LABEL_MANAGED, LABEL_PROC,
};
use deployd::volumes::{helper_name, VolumeError, HELPER_VOLUME, LABEL_HELPER};
use futures::StreamExt;
use lain_store::DockerEndpoint;
use lain_testkit::{import_base_image, Bridge, Dockerd, DockerdOptions, BASE_IMAGE};
use tokio::task::block_in_place;

/// An instance's volume, as `reconcile::spec::volume_name` names it.
const VOL: &str = "lain.vtest.db.1.var_lib_data";

fn cli(d: &Dockerd, args: &[&str]) -> String {
    block_in_place(|| d.docker(args)).unwrap_or_else(|e| panic!("docker {args:?}: {e}"))
}

/// Runs `script` in a busybox container with `volume` at `/d`.
fn run_on(d: &Dockerd, volume: &str, read_only: bool, script: &str) -> String {
    let mount = format!("{volume}:/d{}", if read_only { ":ro" } else { "" });
    cli(
        d,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &mount,
            BASE_IMAGE,
            "sh",
            "-c",
            script,
        ],
    )
}

/// A name longer than the 100 bytes of a plain tar header.
fn long_name() -> String {
    "n".repeat(120)
}

/// Writes the test tree into `volume`, its root last (mode 0750, owner
/// 999:998, an old mtime).
fn write_tree(d: &Dockerd, volume: &str) {
    let long = long_name();
    let script = format!(
        r#"set -e
cd /d
dd if=/dev/urandom of=big.bin bs=65536 count=48 2>/dev/null
printf 'hello\n' > plain.txt
mkdir -p deep/er/est empty sticky 'odd name é'
echo x > 'odd name é/file with spaces'
echo long > deep/er/est/{long}
printf secret > nomode
chmod 000 nomode
cp plain.txt suid
chmod 4755 suid
chmod 1777 sticky
chmod 0700 empty
chown 65534:65534 empty
chown 1000:2000 plain.txt
chmod 0640 plain.txt
ln -s plain.txt rel-link
ln -s /nonexistent/target dangling-link
ln -s ../../big.bin deep/er/up-link
ln big.bin hard.bin
mkfifo fifo
touch -h -t 200102030405.06 rel-link dangling-link deep/er/up-link
touch -t 199901020304.05 plain.txt big.bin nomode suid 'odd name é/file with spaces' fifo deep/er/est/{long}
touch -t 200506070809.10 deep/er/est deep/er deep empty sticky 'odd name é'
chmod 0750 /d
chown 999:998 /d
touch -t 201001010101.01 /d
"#
    );
    run_on(d, volume, false, &script);
}

/// Every path in `volume` with its type, mode, owner, link count and
/// mtime, plus a regular file's sha256 and size and a symlink's target.
fn listing(d: &Dockerd, volume: &str) -> String {
    run_on(
        d,
        volume,
        true,
        r#"cd /d && find . | sort | while IFS= read -r f; do
stat -c '%n|%F|%a|%u:%g|%h|%Y' "$f"
if [ -L "$f" ]; then echo "  -> $(readlink "$f")"
elif [ -f "$f" ]; then echo "  $(sha256sum < "$f") $(stat -c %s "$f")"; fi
done"#,
    )
}

/// The volume helper containers on `d`.
fn helpers(d: &Dockerd) -> String {
    cli(
        d,
        &[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            &format!("label={LABEL_HELPER}={HELPER_VOLUME}"),
        ],
    )
    .trim()
    .to_owned()
}

/// Waits (bounded) until `d` has no helper container left.
async fn no_helpers_within(d: &Dockerd, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let left = helpers(d);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "helpers still there after {bound:?}: {left}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// dockerd stopped with SIGSTOP until dropped (SIGCONT), so that a
/// failing test never leaves it frozen.
struct Frozen(u32);

impl Frozen {
    fn freeze(pid: u32) -> Frozen {
        signal(pid, "-STOP");
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, sig: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}: {status}");
}

fn engine(d: &Dockerd) -> Engine {
    Engine::connect(
        &DockerEndpoint::Unix {
            socket: d.socket_path().display().to_string(),
        },
        Duration::from_secs(2),
    )
    .expect("connect")
}

/// A one-shot stream of `tar`, as import takes it.
fn stream_of(
    tar: Vec<u8>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Bytes, std::io::Error>> = tar
        .chunks(100_000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn volumes_move_between_engines_through_the_api_only() {
    // Two engines, started and loaded side by side (each start takes
    // 20-30 s the first time).
    let (a, b) = block_in_place(|| {
        std::thread::scope(|s| {
            let start = || {
                let d = Dockerd::start_with(DockerdOptions::default().bridge(Bridge::None))
                    .expect("start dockerd");
                import_base_image(&d).expect("import the base image");
                d
            };
            let a = s.spawn(start);
            let b = s.spawn(start);
            (a.join().unwrap(), b.join().unwrap())
        })
    });
    let (ea, eb) = (engine(&a), engine(&b));

    // The volume as an instance would leave it (made by docker on mount,
    // unlabelled).
    write_tree(&a, VOL);
    let original = listing(&a, VOL);
    for expected in [
        ".|directory|750|999:998|",
        "./big.bin|regular file|644|0:0|2|915246245",
        "./plain.txt|regular file|640|1000:2000|1|915246245",
        "./nomode|regular file|0|",
        "./suid|regular file|4755|",
        "./sticky|directory|1777|",
        "./empty|directory|700|65534:65534|2|1118131750",
        "./fifo|fifo|",
        "./rel-link|symbolic link|777|0:0|1|981173106",
        "  -> /nonexistent/target",
        "./odd name é/file with spaces|",
        &format!("./deep/er/est/{}|", long_name()),
        " 3145728\n",
    ] {
        assert!(
            original.contains(expected),
            "{expected:?} not in the tree:\n{original}"
        );
    }
    assert!(ea.volume_exists(VOL).await.unwrap());

    // The tar: relative to the volume's root, the root first.
    let mut tar = Vec::new();
    let mut export = ea.export_volume(VOL, BASE_IMAGE).await.expect("export");
    while let Some(chunk) = export.next().await {
        tar.extend_from_slice(&chunk.expect("export chunk"));
    }
    assert!(tar.len() > 3 << 20, "{} bytes", tar.len());
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for (i, entry) in archive.entries().unwrap().enumerate() {
        let entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if i == 0 {
            let h = entry.header();
            assert_eq!(name, "./");
            assert_eq!(
                (
                    h.mode().unwrap() & 0o7777,
                    h.uid().unwrap(),
                    h.gid().unwrap()
                ),
                (0o750, 999, 998)
            );
        }
        names.push(name);
    }
    assert!(names.iter().all(|n| n.starts_with("./")), "{names:?}");
    assert!(names.contains(&"./big.bin".to_owned()), "{names:?}");
    // Removed before the stream said it ended.
    assert_eq!(helpers(&a), "");

    // Streamed from one engine straight into the other: a volume that
    // does not exist there yet is made, labelled.
    let stream = ea.export_volume(VOL, BASE_IMAGE).await.expect("export");
    let bytes = eb
        .import_volume(VOL, BASE_IMAGE, stream, false)
        .await
        .expect("import");
    assert_eq!(bytes, tar.len() as u64);
    assert_eq!(listing(&b, VOL), original);
    let listed = eb
        .list_volumes(&[&format!("{LABEL_APP}=vtest")])
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let labels = &listed[0].labels;
    assert_eq!(listed[0].name, VOL);
    assert_eq!(
        (
            labels[LABEL_MANAGED].as_str(),
            labels[LABEL_APP].as_str(),
            labels[LABEL_PROC].as_str(),
            labels[LABEL_INSTANCE].as_str()
        ),
        ("deployd", "vtest", "db", "1")
    );
    assert_eq!((helpers(&a), helpers(&b)), (String::new(), String::new()));

    // Without replace the tar is merged in: what it lacks stays.
    run_on(
        &b,
        VOL,
        false,
        "echo old > /d/stale && rm /d/plain.txt && chmod 0777 /d",
    );
    eb.import_volume(VOL, BASE_IMAGE, stream_of(tar.clone()), false)
        .await
        .expect("merge import");
    let merged = listing(&b, VOL);
    assert!(merged.contains("./stale|"), "{merged}");
    assert!(merged.contains("./plain.txt|regular file|640|"), "{merged}");
    assert!(merged.starts_with(".|directory|750|999:998|"), "{merged}");
    // With replace the volume holds the tar and nothing else.
    eb.import_volume(VOL, BASE_IMAGE, stream_of(tar.clone()), true)
        .await
        .expect("replace import");
    assert_eq!(listing(&b, VOL), original);
    assert_eq!(
        eb.list_volumes(&[LABEL_MANAGED]).await.unwrap()[0].labels[LABEL_APP],
        "vtest",
        "re-created with its labels"
    );

    // A running container holds the volume: replace and remove say which.
    cli(
        &b,
        &[
            "run",
            "-d",
            "--name",
            "holder",
            "--network",
            "none",
            "-v",
            &format!("{VOL}:/d"),
            BASE_IMAGE,
            "sleep",
            "600",
        ],
    );
    let e = eb
        .import_volume(VOL, BASE_IMAGE, stream_of(tar.clone()), true)
        .await
        .unwrap_err();
    assert!(matches!(e, VolumeError::InUse { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("holder (running)") && text.contains(VOL),
        "{text}"
    );
    let e = eb.remove_volume(VOL).await.unwrap_err();
    assert!(e.to_string().contains("holder (running)"), "{e}");
    assert_eq!(listing(&b, VOL), original, "left as it was");
    cli(&b, &["rm", "-f", "holder"]);

    // An input that fails half-way: an error that says so, no helper.
    let cut: Vec<Result<Bytes, String>> = vec![
        Ok(Bytes::copy_from_slice(&tar[..1 << 20])),
        Err("the backup store went away".to_owned()),
    ];
    let e = eb
        .import_volume(
            "lain.vtest.db.2.data",
            BASE_IMAGE,
            futures::stream::iter(cut),
            false,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, VolumeError::Input { .. }), "{e}");
    assert!(e.to_string().contains("the backup store went away"), "{e}");
    assert_eq!(helpers(&b), "");

    // Not a tar: the engine's refusal, no helper.
    let junk = Bytes::from(vec![0x5a_u8; 4096]);
    let e = eb
        .import_volume(
            "lain.vtest.db.2.data",
            BASE_IMAGE,
            futures::stream::iter([Ok::<_, String>(junk)]),
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, VolumeError::Upload { .. }), "{e}");
    assert_eq!(helpers(&b), "");

    // A missing volume is not created by exporting it; a missing image
    // touches nothing.
    let e = ea
        .export_volume("lain.vtest.db.9.none", BASE_IMAGE)
        .await
        .err()
        .expect("missing volume");
    assert!(matches!(e, VolumeError::NotFound { .. }), "{e}");
    assert!(!ea.volume_exists("lain.vtest.db.9.none").await.unwrap());
    let e = eb
        .import_volume(
            "lain.vtest.db.3.data",
            "lain-missing:1",
            stream_of(tar.clone()),
            false,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, VolumeError::Runtime(RuntimeError::ImageMissing { .. })),
        "{e}"
    );
    assert!(!eb.volume_exists("lain.vtest.db.3.data").await.unwrap());
    let e = ea.export_volume("../etc", BASE_IMAGE).await.err().unwrap();
    assert!(matches!(e, VolumeError::InvalidName { .. }), "{e}");

    // One transfer per volume at a time: a held export makes others wait.
    let mut held = ea.export_volume(VOL, BASE_IMAGE).await.expect("export");
    let first = held.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    let e = ea.export_volume(VOL, BASE_IMAGE).await.err().unwrap();
    assert!(matches!(e, VolumeError::HelperBusy { .. }), "{e}");
    let e = ea
        .import_volume(VOL, BASE_IMAGE, stream_of(tar.clone()), false)
        .await
        .unwrap_err();
    assert!(matches!(e, VolumeError::HelperBusy { .. }), "{e}");
    // Dropped half-way: the helper goes all the same.
    drop(held);
    no_helpers_within(&a, Duration::from_secs(20)).await;
    let again = ea.export_volume(VOL, BASE_IMAGE).await.expect("export");
    drop(again);
    no_helpers_within(&a, Duration::from_secs(20)).await;

    // A helper a crash left behind blocks the volume until collected.
    let leftover = helper_name(VOL);
    cli(
        &a,
        &[
            "create",
            "--name",
            &leftover,
            "--label",
            &format!("{LABEL_HELPER}={HELPER_VOLUME}"),
            "-v",
            &format!("{VOL}:/lain-volume:ro"),
            BASE_IMAGE,
            "true",
        ],
    );
    let e = ea.export_volume(VOL, BASE_IMAGE).await.err().unwrap();
    assert!(e.to_string().contains(&leftover), "{e}");
    let e = ea.remove_volume(VOL).await.unwrap_err();
    assert!(matches!(e, VolumeError::HelperBusy { .. }), "{e}");
    assert!(ea
        .gc_volume_helpers(Duration::from_secs(3600))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ea.gc_volume_helpers(Duration::ZERO).await.unwrap(),
        [leftover]
    );
    assert_eq!(helpers(&a), "");

    // An engine that stops answering half-way (dockerd frozen): each
    // transfer ends at its idle bound, and the helper it could not remove
    // then is collected once the engine is back.
    let pid = a.pid().expect("dockerd runs");
    let quick = engine(&a).with_timeouts(RuntimeTimeouts {
        call: Duration::from_secs(2),
        ..Default::default()
    });
    let mut export = quick.export_volume(VOL, BASE_IMAGE).await.expect("export");
    export.next().await.unwrap().unwrap();
    let frozen = Frozen::freeze(pid);
    let started = Instant::now();
    let e = loop {
        match export.next().await {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("the export ended although the engine is frozen"),
        }
    };
    assert!(
        e.is_timeout() && e.to_string().contains("volume download"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(frozen);
    drop(export);
    quick.gc_volume_helpers(Duration::ZERO).await.unwrap();
    no_helpers_within(&a, Duration::from_secs(20)).await;

    // The input goes on, the engine stopped reading: the watchdog ends it.
    // The freeze starts as the engine asks for the body, and lasts as long
    // as the stream.
    let mut frozen = None;
    let endless = futures::stream::poll_fn(move |_| {
        frozen.get_or_insert_with(|| Frozen::freeze(pid));
        std::task::Poll::Ready(Some(Ok::<_, String>(Bytes::from(vec![0u8; 64 << 10]))))
    });
    let started = Instant::now();
    let e = quick
        .import_volume(VOL, BASE_IMAGE, endless, false)
        .await
        .unwrap_err();
    assert!(
        e.is_timeout() && e.to_string().contains("volume upload"),
        "{e}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The stream (and its freeze) went with the import.
    assert!(a.ping(), "dockerd answers again");
    quick.gc_volume_helpers(Duration::ZERO).await.unwrap();
    no_helpers_within(&a, Duration::from_secs(20)).await;

    // Removal: gone, and gone again is fine.
    eb.remove_volume(VOL).await.expect("remove");
    assert!(!eb.volume_exists(VOL).await.unwrap());
    eb.remove_volume(VOL).await.expect("remove again");
    ea.remove_volume(VOL).await.expect("remove on a");
    assert_eq!((helpers(&a), helpers(&b)), (String::new(), String::new()));
}
