//! Shared token buckets: one statement hands out tokens, so concurrent takers never get more than
//! the bucket holds.

use gpudev_store::rate_limits::{self, Take};

fn take<'a>(key: &'a str, capacity: f64, want: u32) -> Take<'a> {
    Take {
        scope: "test",
        key,
        // A token an hour: nothing refills while the test runs.
        rate: 1.0 / 3600.0,
        capacity,
        want,
    }
}

#[tokio::test]
async fn a_new_bucket_starts_full_and_grants_no_more_than_it_holds() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let got = rate_limits::take(&client, &[take("a", 5.0, 3), take("b", 2.0, 3)])
        .await
        .unwrap();
    assert_eq!(got[0].granted, 3);
    assert!((got[0].tokens_left - 2.0).abs() < 0.01, "{got:?}");
    assert_eq!(got[1].granted, 2, "b holds only two");
    let again = rate_limits::take(&client, &[take("a", 5.0, 3)])
        .await
        .unwrap();
    assert_eq!(again[0].granted, 2, "two were left in a");
    let empty = rate_limits::take(&client, &[take("a", 5.0, 1)])
        .await
        .unwrap();
    assert_eq!(empty[0].granted, 0);
    let wait = empty[0].seconds_to_next_token(1.0 / 3600.0);
    assert!(wait > 3500.0 && wait <= 3600.0, "{wait}");
}

#[tokio::test]
async fn tokens_given_back_can_be_taken_again_up_to_the_capacity() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    rate_limits::take(&client, &[take("k", 4.0, 4)])
        .await
        .unwrap();
    rate_limits::give_back(&client, &[("test", "k", 3), ("test", "gone", 7)])
        .await
        .unwrap();
    let got = rate_limits::take(&client, &[take("k", 4.0, 10)])
        .await
        .unwrap();
    assert_eq!(got[0].granted, 3);
    // Giving back more than was taken cannot lift a bucket over its capacity.
    rate_limits::give_back(&client, &[("test", "k", 50)])
        .await
        .unwrap();
    let got = rate_limits::take(&client, &[take("k", 4.0, 10)])
        .await
        .unwrap();
    assert_eq!(got[0].granted, 4);
}

#[tokio::test]
async fn a_bucket_refills_at_its_rate_by_the_database_clock() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let fast = |want| Take {
        scope: "test",
        key: "fast",
        rate: 20.0,
        capacity: 2.0,
        want,
    };
    assert_eq!(
        rate_limits::take(&client, &[fast(2)]).await.unwrap()[0].granted,
        2
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // 0.2 s at 20 a second is four tokens, capped at the capacity of two.
    assert_eq!(
        rate_limits::take(&client, &[fast(5)]).await.unwrap()[0].granted,
        2
    );
}

#[tokio::test]
async fn concurrent_takers_on_many_connections_share_one_allowance() {
    let db = gpudev_testkit::test_db().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = db.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut granted = 0;
            for _ in 0..20 {
                granted += rate_limits::take(&client, &[take("shared", 50.0, 1)])
                    .await
                    .unwrap()[0]
                    .granted;
            }
            granted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 50, "160 asked, the bucket held 50");
}

#[tokio::test]
async fn full_buckets_are_forgotten_and_others_kept() {
    let db = gpudev_testkit::test_db().await;
    let client = db.connect().await;
    let quick = Take {
        scope: "test",
        key: "quick",
        rate: 1000.0,
        capacity: 1.0,
        want: 1,
    };
    rate_limits::take(&client, &[quick, take("slow", 3.0, 1)])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(rate_limits::forget_full(&client).await.unwrap(), 1);
    let keys: Vec<String> = client
        .query("SELECT key FROM rate_limit_buckets", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(keys, ["slow"]);
}
