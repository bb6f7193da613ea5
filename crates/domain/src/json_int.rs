//! Integers as JSON Schema counts them: `10` and `10.0` are the same integer, `10.5` is none.
//! serde reads `10.0` as a float and refuses it for an integer field, so a body the OpenAPI
//! document calls valid (`"size_gb": 10.0`) would be refused; fields read with [`option`] take
//! it.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, Visitor};

/// Reads an optional integer field (use with `#[serde(default, deserialize_with = ...)]`):
/// `null` is `None`; a whole number, written with or without a fraction of zero, must fit `T`.
pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    struct Whole<T>(PhantomData<T>);

    impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for Whole<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            T::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &"an integer in range"))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            T::try_from(v)
                .map(Some)
                .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &"an integer in range"))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // Within ±2^53 every whole float is exactly an i64; beyond it no field has a use.
            const EXACT: f64 = 9_007_199_254_740_992.0;
            if v.is_finite() && v.fract() == 0.0 && v.abs() <= EXACT {
                // Whole and within ±2^53: the cast is exact.
                self.visit_i64(v as i64)
            } else {
                Err(E::invalid_type(de::Unexpected::Float(v), &self))
            }
        }
    }

    d.deserialize_option(Whole(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(default, deserialize_with = "super::option")]
        n: Option<u32>,
    }

    fn read(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Body>(json)
            .map(|b| b.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_read_with_or_without_a_zero_fraction() {
        assert_eq!(read(r#"{"n": 10}"#), Ok(Some(10)));
        assert_eq!(read(r#"{"n": 10.0}"#), Ok(Some(10)));
        assert_eq!(read(r#"{"n": 1e1}"#), Ok(Some(10)));
        assert_eq!(read(r#"{"n": null}"#), Ok(None));
        assert_eq!(read("{}"), Ok(None));
    }

    #[test]
    fn fractions_strings_and_out_of_range_numbers_are_refused() {
        for bad in [
            r#"{"n": 10.5}"#,
            r#"{"n": "10"}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": 1e300}"#,
            r#"{"n": true}"#,
        ] {
            assert!(read(bad).is_err(), "{bad} was accepted");
        }
        assert!(read(r#"{"n": 10.5}"#).unwrap_err().contains("an integer"));
    }
}
