//! Environment values and commands are stored sealed: the database holds only ciphertext, the
//! processor's read opens it with any configured key, and a row moved to another reservation or
//! altered does not open (real PostgreSQL with real PGMQ).

use std::collections::BTreeMap;

use gpudev_store::reservations::{self, StoredSecrets, Submitted};
use gpudev_store::{Queue, ReservationSecrets, SealError, SealedSecrets, SealingKeys};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::common::{KEYS, SECRET_VALUE, count, reservation_for, user};

const COMMAND: &str = "python train.py --token tk_c0mmand-s3cret";

/// Submits a reservation of `name` with the usual secret and [`COMMAND`], sealed with `keys`.
async fn submit_with(client: &mut Client, name: &str, keys: &SealingKeys) -> Uuid {
    let owner = user(client, name).await;
    let mut new = reservation_for(&owner);
    let secrets = ReservationSecrets {
        env: BTreeMap::from([("WANDB_API_KEY".to_owned(), SECRET_VALUE.to_owned())]),
        command: Some(COMMAND.to_owned()),
    };
    new.secrets = Some(keys.seal(new.reservation_id, &secrets).unwrap());
    let queue = Queue::new("gpu_reservations").unwrap();
    let submitted = reservations::submit(client, &queue, &new).await.unwrap();
    assert!(matches!(submitted, Submitted::Created { .. }));
    new.reservation_id
}

async fn sealed(client: &Client, id: Uuid) -> SealedSecrets {
    match reservations::stored_secrets(client, id).await.unwrap() {
        Some(StoredSecrets::Sealed(s)) => s,
        other => panic!("expected a sealed row, found {other:?}"),
    }
}

#[tokio::test]
async fn the_database_holds_neither_the_values_nor_the_command_yet_the_key_opens_them() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let id = submit_with(&mut client, "alice", &KEYS).await;

    // Every byte of the secrets row and of the reservation row, as PostgreSQL holds them.
    let stored: String = client
        .query_one(
            "SELECT s::text || encode(s.data_key, 'escape') || encode(s.sealed, 'escape') \
               || r::text \
             FROM reservation_secrets s JOIN reservations r USING (reservation_id) \
             WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!stored.contains(SECRET_VALUE), "{stored}");
    assert!(!stored.contains("tk_c0mmand-s3cret"), "{stored}");
    assert!(!stored.contains("train.py"), "{stored}");
    assert!(stored.contains("WANDB_API_KEY"), "names stay readable");
    let row = client
        .query_one(
            "SELECT s.key_id, s.env IS NULL, r.command IS NULL \
             FROM reservation_secrets s JOIN reservations r USING (reservation_id) \
             WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "test-1");
    assert!(row.get::<_, bool>(1), "no plain env beside the sealed one");
    assert!(
        row.get::<_, bool>(2),
        "no plain command in the reservation row"
    );

    let opened = KEYS.open(id, &sealed(&client, id).await).unwrap();
    assert_eq!(opened.env["WANDB_API_KEY"], SECRET_VALUE);
    assert_eq!(opened.command.as_deref(), Some(COMMAND));
}

#[tokio::test]
async fn a_row_moved_to_another_reservation_or_altered_does_not_open() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let alice = submit_with(&mut client, "alice", &KEYS).await;
    let bob = submit_with(&mut client, "bob", &KEYS).await;

    // Swap the two reservations' ciphertexts, as someone with write access to the table could.
    client
        .execute(
            "UPDATE reservation_secrets s SET data_key = o.data_key, sealed = o.sealed \
             FROM reservation_secrets o \
             WHERE s.reservation_id IN ($1, $2) AND o.reservation_id IN ($1, $2) \
               AND o.reservation_id <> s.reservation_id",
            &[&alice, &bob],
        )
        .await
        .unwrap();
    let err = KEYS.open(alice, &sealed(&client, alice).await).unwrap_err();
    assert_eq!(
        err,
        SealError::Tampered {
            reservation_id: alice,
            key_id: "test-1".into()
        }
    );
    assert!(
        err.to_string()
            .contains("altered or copied from another reservation"),
        "{err}"
    );

    // One flipped bit in the ciphertext.
    let carol = submit_with(&mut client, "carol", &KEYS).await;
    client
        .execute(
            "UPDATE reservation_secrets \
             SET sealed = set_byte(sealed, 20, get_byte(sealed, 20) # 1) \
             WHERE reservation_id = $1",
            &[&carol],
        )
        .await
        .unwrap();
    assert!(matches!(
        KEYS.open(carol, &sealed(&client, carol).await),
        Err(SealError::Tampered { .. })
    ));
}

#[tokio::test]
async fn after_a_rotation_the_old_key_still_opens_what_it_sealed() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let key1 = SealingKeys::generate("2026-06").unwrap();
    let before = submit_with(&mut client, "alice", &key1).await;

    // Key 2 becomes current; key 1 stays configured until what it sealed has ended.
    let key2 = SealingKeys::generate("2026-12").unwrap();
    let rotated = SealingKeys::parse(&key2.then(&key1).to_setting()).unwrap();
    let after = submit_with(&mut client, "bob", &rotated).await;

    assert_eq!(sealed(&client, before).await.key_id, "2026-06");
    assert_eq!(sealed(&client, after).await.key_id, "2026-12");
    for id in [before, after] {
        let opened = rotated.open(id, &sealed(&client, id).await).unwrap();
        assert_eq!(opened.env["WANDB_API_KEY"], SECRET_VALUE);
    }
    // Without key 1, the clear error names the missing key.
    let err = key2
        .open(before, &sealed(&client, before).await)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sealed with key \"2026-06\", which is not among SECRETS_ENCRYPTION_KEYS (configured: \
         2026-12)"
    );
}

#[tokio::test]
async fn a_plain_row_from_before_the_upgrade_is_still_read_and_forgotten_with_its_command() {
    let db = gpudev_testkit::test_db().await;
    let mut client = db.connect().await;
    let owner = user(&client, "alice").await;
    let mut new = reservation_for(&owner);
    new.secrets = None;
    let id = new.reservation_id;
    let queue = Queue::new("gpu_reservations").unwrap();
    reservations::submit(&mut client, &queue, &new)
        .await
        .unwrap();
    // What an older API wrote: plain env values and a plain command.
    client
        .execute(
            "INSERT INTO reservation_secrets (reservation_id, env) \
             VALUES ($1, '{\"OLD\": \"plain-value\"}')",
            &[&id],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE reservations SET command = 'make old' WHERE reservation_id = $1",
            &[&id],
        )
        .await
        .unwrap();

    let stored = reservations::stored_secrets(&client, id).await.unwrap();
    assert_eq!(
        stored,
        Some(StoredSecrets::Plain(BTreeMap::from([(
            "OLD".to_owned(),
            "plain-value".to_owned()
        )])))
    );
    let r = reservations::get(&client, id).await.unwrap();
    assert_eq!(r.command.as_deref(), Some("make old"));

    assert!(reservations::delete_secret_env(&client, id).await.unwrap());
    assert_eq!(
        reservations::stored_secrets(&client, id).await.unwrap(),
        None
    );
    let r = reservations::get(&client, id).await.unwrap();
    assert_eq!(
        r.command, None,
        "the plain command ends with the reservation"
    );

    // A row cannot be both sealed and plain.
    let both = client
        .execute(
            "INSERT INTO reservation_secrets (reservation_id, env, key_id, data_key, sealed) \
             VALUES ($1, '{}', 'k', '\\x00', '\\x00')",
            &[&id],
        )
        .await;
    assert!(both.is_err());
    assert_eq!(
        count(&client, "SELECT count(*) FROM reservation_secrets").await,
        0
    );
}
