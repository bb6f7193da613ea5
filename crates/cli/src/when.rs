//! Times given on the command line (`reserve --start-at`, `avail --at`): RFC 3339, or a date
//! and time in the local zone as people write them (`2026-12-08 09:00`).

use chrono::{DateTime, Local, LocalResult, NaiveDateTime, TimeZone, Utc};

/// The local forms accepted, most common first.
const LOCAL_FORMATS: [&str; 4] = [
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%dT%H:%M:%S",
];

/// Reads `raw` as RFC 3339 (`2026-12-08T09:00:00+01:00`, `…Z`), or as a local date and time
/// (`2026-12-08 09:00`) in the zone of this machine (`TZ`). A local time that does not exist
/// (skipped by a daylight-saving change) or exists twice is refused with the reason.
pub fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    parse_time_in(raw, &Local)
}

/// [`parse_time`] in zone `tz`.
pub fn parse_time_in<Tz: TimeZone>(raw: &str, tz: &Tz) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .ok_or_else(|| {
            format!(
                "{raw:?} is not a time: write it as \"2026-12-08 09:00\" (local time) or in RFC \
                 3339 (2026-12-08T09:00:00+01:00)"
            )
        })?;
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Err(format!(
            "{raw:?} happens twice in the local zone (a daylight-saving change): give the offset, \
             such as {} or {}",
            a.fixed_offset().to_rfc3339(),
            b.fixed_offset().to_rfc3339()
        )),
        LocalResult::None => Err(format!(
            "{raw:?} does not exist in the local zone (skipped by a daylight-saving change)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    #[test]
    fn local_times_are_read_in_the_zone_and_rfc_3339_as_given() {
        let paris = FixedOffset::east_opt(3600).unwrap();
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            parse_time_in("2026-12-08 09:00", &paris).unwrap(),
            utc("2026-12-08T08:00:00Z")
        );
        assert_eq!(
            parse_time_in(" 2026-12-08T09:00:30 ", &paris).unwrap(),
            utc("2026-12-08T08:00:30Z")
        );
        assert_eq!(
            parse_time_in("2026-12-08T09:00:00-05:00", &paris).unwrap(),
            utc("2026-12-08T14:00:00Z")
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_forms_accepted() {
        let err = parse_time_in("tomorrow 9am", &Utc).unwrap_err();
        assert!(err.contains("2026-12-08 09:00"), "{err}");
        assert!(parse_time_in("2026-13-01 09:00", &Utc).is_err());
    }
}
