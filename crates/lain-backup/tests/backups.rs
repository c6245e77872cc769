//! Backups against real targets: a directory, and an S3-compatible server
//! (moto) on loopback.

mod support;

use std::fs;
use std::os::unix::fs::chown;
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lain_backup::{
    BackupId, BackupMeta, BackupMode, Backups, Error, Expire, ListFilter, Target, VolumeKey,
};
use support::{
    assert_same, mkdir, noise, set_mtime, snapshot, snapshot_of_tar, symlink, tar_volume, unpack,
    write, Moto,
};
use tokio::io::AsyncReadExt;

const OLD: i64 = 1_000_000_000; // 2001-09-09
const LATER: i64 = 1_500_000_000; // 2017-07-14

/// The volume's tar stream, as deployd would hand it over.
async fn volume_stream(dir: &Path, scratch: &Path, n: u32) -> tokio::fs::File {
    let path = tar_volume(dir, &scratch.join(format!("volume-{n}.tar")));
    tokio::fs::File::open(path).await.unwrap()
}

async fn restore_bytes(backups: &Backups, key: &VolumeKey, id: &BackupId) -> Vec<u8> {
    let mut restored = backups.restore(key, id).await.unwrap();
    assert_eq!(&restored.meta().id, id);
    let mut out = Vec::new();
    restored.read_to_end(&mut out).await.unwrap();
    out
}

/// First state: sizes from empty to over a MiB, nested directories,
/// symlinks, odd modes and owners, a long path, a non-ASCII name.
fn build_v1(v: &Path) {
    mkdir(v, 0o750);
    write(&v.join("small.txt"), b"hello, volume\n", 0o644, OLD);
    write(&v.join("empty"), b"", 0o600, OLD + 1);
    write(
        &v.join("big.bin"),
        &noise(1536 * 1024 + 7, 1),
        0o640,
        OLD + 2,
    );
    // Over the 8 MiB part size: S3 gets a multipart upload.
    write(
        &v.join("huge.bin"),
        &noise(9 * 1024 * 1024 + 3, 2),
        0o644,
        OLD + 3,
    );
    write(
        &v.join("nested/deeper/deepest/file.cfg"),
        b"k=v\n",
        0o400,
        OLD + 4,
    );
    write(
        &v.join("nested/sibling.txt"),
        &noise(5000, 3),
        0o664,
        OLD + 5,
    );
    write(&v.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o4755, OLD + 6);
    write(&v.join("owned.dat"), b"not root's", 0o644, OLD + 7);
    chown(v.join("owned.dat"), Some(1234), Some(5678)).unwrap();
    write(
        &v.join("ünïcödé.txt"),
        "ünïcödé\n".as_bytes(),
        0o644,
        OLD + 8,
    );
    let long = v.join(format!("{}/{}", "l".repeat(90), "n".repeat(90)));
    write(&long, b"long path", 0o644, OLD + 9);
    symlink("small.txt", &v.join("link"), OLD + 10);
    symlink("/etc/nowhere/absolute", &v.join("abs-link"), OLD + 11);
    mkdir(&v.join("sticky"), 0o1777);
    mkdir(&v.join("emptydir"), 0o700);
    for d in [
        "sticky",
        "emptydir",
        "nested/deeper/deepest",
        "nested/deeper",
        "nested",
    ] {
        set_mtime(&v.join(d), OLD + 20);
    }
    set_mtime(&v.join("l".repeat(90)), OLD + 21);
    set_mtime(v, OLD + 30);
}

/// Second state: content, size, mode and link changes, a change that
/// keeps size and mtime, a deletion, additions.
fn modify_v2(v: &Path) {
    write(
        &v.join("small.txt"),
        b"hello again, volume: longer now\n",
        0o644,
        LATER,
    );
    let mut big = fs::read(v.join("big.bin")).unwrap();
    for b in &mut big[700_000..700_100] {
        *b ^= 0x5a;
    }
    // Same size, same mtime: only the content hash shows the change.
    write(&v.join("big.bin"), &big, 0o640, OLD + 2);
    fs::remove_file(v.join("nested/deeper/deepest/file.cfg")).unwrap();
    write(&v.join("new.txt"), b"added in v2", 0o644, LATER + 1);
    fs::set_permissions(v.join("run.sh"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::remove_file(v.join("link")).unwrap();
    symlink("empty", &v.join("link"), LATER + 2);
    write(&v.join("added/inner.txt"), b"inner", 0o644, LATER + 3);
    set_mtime(&v.join("added"), LATER + 4);
}

/// Third state: a whole subtree gone, an empty file filled, a file
/// turned into a symlink, an mtime-only change.
fn modify_v3(v: &Path) {
    fs::remove_dir_all(v.join("nested")).unwrap();
    write(&v.join("empty"), b"not empty any more", 0o600, LATER + 10);
    fs::remove_file(v.join("new.txt")).unwrap();
    fs::remove_file(v.join("small.txt")).unwrap();
    symlink("added/inner.txt", &v.join("small.txt"), LATER + 11);
    set_mtime(&v.join("owned.dat"), LATER + 12);
}

use std::os::unix::fs::PermissionsExt;

/// The key scenario: full, increment, increment; each point restored and
/// compared with the volume as it was, byte for byte.
async fn full_and_increments_restore_exactly(backups: &Backups) {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("data");
    let key = VolumeKey::new("redis", "worker.redis", 1, "/redis/data").unwrap();
    let keep = Expire::parse("10d").unwrap();

    build_v1(&vol);
    let snap1 = snapshot(&vol);
    let full = backups
        .store_full(&key, volume_stream(&vol, work.path(), 1).await, keep)
        .await
        .unwrap();
    assert_eq!(full.mode, BackupMode::Full);
    assert_eq!(full.files as usize, snap1.len());
    assert_eq!(full.stored, full.files);
    assert!(full.depends_on.is_empty() && full.base.is_none());
    // Over the 8 MiB part size: uploaded in parts.
    assert!(full.size > 8 << 20, "{}", full.size);

    modify_v2(&vol);
    let snap2 = snapshot(&vol);
    let inc1 = backups
        .store_increment(&key, volume_stream(&vol, work.path(), 2).await, keep)
        .await
        .unwrap();
    assert_eq!(inc1.mode, BackupMode::Increment, "{:?}", inc1.note);
    assert_eq!(inc1.base.as_ref(), Some(&full.id));
    assert_eq!(inc1.parent.as_ref(), Some(&full.id));
    assert_eq!(inc1.depends_on, vec![full.id.clone()]);
    assert_eq!(inc1.files as usize, snap2.len());
    // Changed: the root dir, small.txt, big.bin, new.txt, run.sh, link,
    // added/, added/inner.txt, and nested/deeper/deepest (lost a file).
    assert_eq!(inc1.stored, 9, "{inc1:?}");
    assert!(inc1.size < full.size / 4, "an increment holds only changes");

    modify_v3(&vol);
    let snap3 = snapshot(&vol);
    let inc2 = backups
        .store_increment(&key, volume_stream(&vol, work.path(), 3).await, keep)
        .await
        .unwrap();
    assert_eq!(inc2.mode, BackupMode::Increment);
    assert_eq!(inc2.base.as_ref(), Some(&full.id));
    assert_eq!(inc2.parent.as_ref(), Some(&inc1.id));
    // big.bin lives in inc1 now, huge.bin still in the full backup.
    let mut deps = vec![full.id.clone(), inc1.id.clone()];
    deps.sort();
    assert_eq!(inc2.depends_on, deps);

    for (meta, want, n) in [(&full, &snap1, 1), (&inc1, &snap2, 2), (&inc2, &snap3, 3)] {
        let tar = restore_bytes(backups, &key, &meta.id).await;
        let what = format!("restore of point {n} ({:?})", meta.mode);
        assert_same(&what, want, &snapshot_of_tar(&tar, "data"));
        let dest = work.path().join(format!("restored-{n}"));
        unpack(&tar, &dest);
        assert_same(
            &format!("{what}, unpacked"),
            want,
            &snapshot(&dest.join("data")),
        );
    }

    let listed = backups.list("redis", &ListFilter::default()).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, vec![inc2.id.clone(), inc1.id.clone(), full.id.clone()]);
    assert_eq!(listed[0], inc2);
    let filter = ListFilter {
        proc: Some("worker.redis".into()),
        instance: Some(1),
        volume: Some("/redis/data".into()),
    };
    assert_eq!(backups.list("redis", &filter).await.unwrap().len(), 3);
    for other in [
        ListFilter {
            instance: Some(2),
            ..filter.clone()
        },
        ListFilter {
            proc: Some("worker".into()),
            ..filter.clone()
        },
        ListFilter {
            volume: Some("/redis".into()),
            ..filter.clone()
        },
    ] {
        assert!(
            backups.list("redis", &other).await.unwrap().is_empty(),
            "{other:?}"
        );
    }
    assert!(backups
        .list("redis2", &ListFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(backups.list_volume(&key).await.unwrap(), listed);
}

/// A small volume, for the tests that are about bookkeeping.
fn small_volume(v: &Path, content: &[u8]) {
    mkdir(v, 0o755);
    write(&v.join("a.txt"), content, 0o644, OLD);
    write(&v.join("b.txt"), b"constant", 0o644, OLD);
    set_mtime(v, OLD);
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap()
}

async fn store(
    backups: &Backups,
    key: &VolumeKey,
    mode: BackupMode,
    vol: &Path,
    scratch: &Path,
    expire: &str,
    at: DateTime<Utc>,
) -> BackupMeta {
    let n = (at - t0()).num_seconds() as u32;
    backups
        .store_at(
            key,
            mode,
            volume_stream(vol, scratch, n).await,
            Expire::parse(expire).unwrap(),
            at,
        )
        .await
        .unwrap()
}

fn ids(list: &[BackupMeta]) -> Vec<BackupId> {
    let mut ids: Vec<_> = list.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<BackupId>) -> Vec<BackupId> {
    v.sort();
    v
}

/// Retention with a fake clock: fulls stay while increments need them.
async fn retention_keeps_what_increments_need(backups: &Backups) {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("data");
    let key = VolumeKey::new("notes", "web", 0, "/var/lib/notes").unwrap();
    let h = Duration::hours;
    use BackupMode::{Full, Increment};

    small_volume(&vol, b"one");
    let f1 = store(backups, &key, Full, &vol, work.path(), "2h", t0()).await;
    write(&vol.join("a.txt"), b"two", 0o644, OLD + 1);
    let i1 = store(
        backups,
        &key,
        Increment,
        &vol,
        work.path(),
        "10h",
        t0() + h(1),
    )
    .await;
    write(&vol.join("a.txt"), b"three", 0o644, OLD + 2);
    let i2 = store(
        backups,
        &key,
        Increment,
        &vol,
        work.path(),
        "10h",
        t0() + h(2),
    )
    .await;
    let f2 = store(backups, &key, Full, &vol, work.path(), "1d", t0() + h(3)).await;
    write(&vol.join("a.txt"), b"four", 0o644, OLD + 3);
    let i3 = store(
        backups,
        &key,
        Increment,
        &vol,
        work.path(),
        "10h",
        t0() + h(4),
    )
    .await;
    assert_eq!(i1.parent.as_ref(), Some(&f1.id));
    assert_eq!(i2.parent.as_ref(), Some(&i1.id));
    assert_eq!(
        i2.depends_on,
        vec![f1.id.clone()],
        "b.txt from f1; a.txt in i2 itself"
    );
    assert_eq!(i3.base.as_ref(), Some(&f2.id));
    let snap_i2 = {
        let mut s = snapshot(&vol);
        if let Some(n) = s.get_mut(Path::new("a.txt")) {
            n.kind = support::Kind::File(b"three".to_vec());
            n.mtime = OLD + 2;
        }
        s
    };

    // f1 expired at +2h, but i1 and i2 build on it.
    let report = backups.expire(t0() + h(5)).await.unwrap();
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(
        report.kept_for_dependents,
        vec![(key.clone(), f1.id.clone())]
    );
    assert_eq!(backups.list_volume(&key).await.unwrap().len(), 5);
    let tar = restore_bytes(backups, &key, &i2.id).await;
    assert_same(
        "i2 with f1 expired",
        &snap_i2,
        &snapshot_of_tar(&tar, "data"),
    );

    // i1 expired at +11h; i2 lives until +12h and still needs f1 (its
    // base). i1 holds nothing i2 needs, so it goes.
    let report = backups.expire(t0() + h(11)).await.unwrap();
    assert_eq!(report.deleted, vec![(key.clone(), i1.id.clone())]);
    assert_eq!(
        report.kept_for_dependents,
        vec![(key.clone(), f1.id.clone())]
    );
    let tar = restore_bytes(backups, &key, &i2.id).await;
    assert_same("i2 with i1 gone", &snap_i2, &snapshot_of_tar(&tar, "data"));

    // At +12h i2 expires too: the whole first chain goes. f2 (1 day) and
    // i3 (until +14h) stay.
    let report = backups.expire(t0() + h(12)).await.unwrap();
    let gone: Vec<_> = report.deleted.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(sorted(gone), sorted(vec![f1.id.clone(), i2.id.clone()]));
    let left = backups.list_volume(&key).await.unwrap();
    assert_eq!(ids(&left), sorted(vec![f2.id.clone(), i3.id.clone()]));
    let tar = restore_bytes(backups, &key, &i3.id).await;
    assert_same("i3", &snapshot(&vol), &snapshot_of_tar(&tar, "data"));
    match backups.restore(&key, &i1.id).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("restoring a deleted backup: {other:?}"),
    }

    // An increment whose parent is about to expire becomes a full backup.
    let late = store(
        backups,
        &key,
        Increment,
        &vol,
        work.path(),
        "10h",
        t0() + h(12) + Duration::minutes(30),
    )
    .await;
    assert_eq!(
        late.parent.as_ref(),
        Some(&i3.id),
        "i3 expires at +14h, with a margin of 1h: fine"
    );
    let later = store(
        backups,
        &key,
        Increment,
        &vol,
        work.path(),
        "1h",
        t0() + h(22),
    )
    .await;
    assert_eq!(
        later.mode, Full,
        "the newest, `late`, expires at +22h30, within its margin"
    );
    assert!(
        later.note.as_deref().unwrap().contains("too soon"),
        "{later:?}"
    );

    // Once all have expired, nothing is left.
    let report = backups.expire(t0() + h(100)).await.unwrap();
    assert_eq!(report.deleted.len(), 4);
    assert!(backups.list_volume(&key).await.unwrap().is_empty());
}

async fn increment_without_previous_is_full(backups: &Backups) {
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("data");
    small_volume(&vol, b"x");
    let key = VolumeKey::new("first", "web", 0, "/data").unwrap();
    let meta = backups
        .store_increment(
            &key,
            volume_stream(&vol, work.path(), 0).await,
            Expire::NEVER,
        )
        .await
        .unwrap();
    assert_eq!(meta.mode, BackupMode::Full);
    assert_eq!(meta.requested_mode, BackupMode::Increment);
    assert!(
        meta.note.as_deref().unwrap().contains("no earlier backup"),
        "{meta:?}"
    );
    assert_eq!(meta.expire_at, None);
    // Nothing expires it.
    let report = backups
        .expire(Utc::now() + Duration::days(36500))
        .await
        .unwrap();
    assert!(report.deleted.iter().all(|(k, _)| k != &key));
}

async fn sanitised_names_that_collide_stay_apart(backups: &Backups) {
    let work = tempfile::tempdir().unwrap();
    let a = VolumeKey::new("coll", "web", 0, "/a.b").unwrap();
    let b = VolumeKey::new("coll", "web", 0, "/a_b").unwrap();
    assert_eq!(a.storage_name(), b.storage_name());
    let va = work.path().join("va/data");
    let vb = work.path().join("vb/data");
    fs::create_dir_all(work.path().join("va")).unwrap();
    fs::create_dir_all(work.path().join("vb")).unwrap();
    small_volume(&va, b"volume a");
    small_volume(&vb, b"volume b");
    let ma = backups
        .store_full(&a, volume_stream(&va, work.path(), 1).await, Expire::NEVER)
        .await
        .unwrap();
    let mb = backups
        .store_full(&b, volume_stream(&vb, work.path(), 2).await, Expire::NEVER)
        .await
        .unwrap();
    assert!(ma.archive.starts_with(&format!("{}/", a.storage_name())));
    assert!(mb
        .archive
        .starts_with(&format!("{}/", b.storage_name_with_hash())));
    let list = backups.list("coll", &ListFilter::default()).await.unwrap();
    assert_eq!(list.len(), 2);
    let tar = restore_bytes(backups, &b, &mb.id).await;
    assert_same("b", &snapshot(&vb), &snapshot_of_tar(&tar, "data"));
    let tar = restore_bytes(backups, &a, &ma.id).await;
    assert_same("a", &snapshot(&va), &snapshot_of_tar(&tar, "data"));
    // Each volume's backups are its own.
    match backups.restore(&a, &mb.id).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{other:?}"),
    }
}

async fn bad_streams_store_nothing(backups: &Backups) {
    let key = VolumeKey::new("bad", "web", 0, "/data").unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, "ok", &b"x"[..]).unwrap();
    let whole = tar.into_inner().unwrap();
    // Cut off where the next header would be.
    let cut = whole[..1024].to_vec();
    let err = backups
        .store_full(&key, std::io::Cursor::new(cut), Expire::NEVER)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadArchive(_)), "{err}");
    assert!(backups.list_volume(&key).await.unwrap().is_empty());
    let meta = backups
        .store_full(&key, std::io::Cursor::new(whole), Expire::NEVER)
        .await
        .unwrap();
    assert_eq!(meta.files, 1);
}

fn dir_backups(root: &Path) -> Backups {
    Backups::new(Target::dir(&root.join("backups")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_full_and_increments_restore_exactly() {
    let root = tempfile::tempdir().unwrap();
    full_and_increments_restore_exactly(&dir_backups(root.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_retention() {
    let root = tempfile::tempdir().unwrap();
    let backups = dir_backups(root.path());
    retention_keeps_what_increments_need(&backups).await;
    increment_without_previous_is_full(&backups).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_names_and_bad_streams() {
    let root = tempfile::tempdir().unwrap();
    let backups = dir_backups(root.path());
    sanitised_names_that_collide_stay_apart(&backups).await;
    bad_streams_store_nothing(&backups).await;
}

/// Damage on the target is found before a byte is restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dir_damage_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let backups = dir_backups(root.path());
    let work = tempfile::tempdir().unwrap();
    let vol = work.path().join("data");
    let key = VolumeKey::new("dmg", "web", 0, "/data").unwrap();
    small_volume(&vol, b"first");
    let full = backups
        .store_full(
            &key,
            volume_stream(&vol, work.path(), 1).await,
            Expire::NEVER,
        )
        .await
        .unwrap();
    write(&vol.join("a.txt"), b"second", 0o644, LATER);
    let inc = backups
        .store_increment(
            &key,
            volume_stream(&vol, work.path(), 2).await,
            Expire::NEVER,
        )
        .await
        .unwrap();
    let on_disk = |rel: &str| root.path().join("backups").join(rel);

    // A flipped byte in the full archive.
    let archive = on_disk(&full.archive);
    let original = fs::read(&archive).unwrap();
    let mut damaged = original.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    fs::write(&archive, &damaged).unwrap();
    for id in [&full.id, &inc.id] {
        let err = backups.restore(&key, id).await.unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
    fs::write(&archive, &original).unwrap();
    restore_bytes(&backups, &key, &inc.id).await;

    // A manifest that does not match its metadata.
    let manifest = on_disk(&inc.manifest.path);
    let original = fs::read(&manifest).unwrap();
    fs::write(&manifest, &original[..original.len() - 1]).unwrap();
    let err = backups.restore(&key, &inc.id).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    fs::write(&manifest, &original).unwrap();

    // A dependency deleted behind retention's back.
    fs::remove_file(on_disk(&format!(
        "{}/{}/meta.json",
        key.storage_name(),
        full.id
    )))
    .unwrap();
    let err = backups.restore(&key, &inc.id).await.unwrap_err();
    assert!(matches!(err, Error::Incomplete { .. }), "{err}");
    assert!(err.to_string().contains(full.id.as_str()), "{err}");
    // The full backup is now an unfinished upload: removed after a day.
    let report = backups
        .expire(full.created_at + Duration::hours(23))
        .await
        .unwrap();
    assert!(report.orphans_removed.is_empty());
    let report = backups
        .expire(full.created_at + Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(report.orphans_removed, vec![(key.clone(), full.id.clone())]);
    assert!(!archive.exists());
}

fn s3_backups(moto: &Moto, bucket: &str, prefix: &str) -> Backups {
    moto.create_bucket(bucket);
    Backups::new(Target::s3(&moto.config(bucket, prefix)).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_full_and_increments_restore_exactly() {
    let moto = Moto::start();
    let backups = s3_backups(&moto, "lain-backups", "cluster-a/backups");
    assert!(backups
        .target()
        .label()
        .contains("/lain-backups/cluster-a/backups"));
    full_and_increments_restore_exactly(&backups).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_retention_names_and_bad_streams() {
    let moto = Moto::start();
    let backups = s3_backups(&moto, "retention", "");
    retention_keeps_what_increments_need(&backups).await;
    increment_without_previous_is_full(&backups).await;
    sanitised_names_that_collide_stay_apart(&backups).await;
    bad_streams_store_nothing(&backups).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_wrong_credentials_or_bucket_fail_clearly() {
    let moto = Moto::start();
    let backups = Backups::new(Target::s3(&moto.config("no-such-bucket", "")).unwrap());
    let err = backups
        .list("app", &ListFilter::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no-such-bucket"), "{err}");
    assert!(err.contains("check that the target is reachable"), "{err}");
}
