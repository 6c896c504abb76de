//! The stand-in's bridge for CloudWatch: the SDK speaks Smithy RPC v2 CBOR to CloudWatch, which
//! moto 5.2.5 does not read; moto's CloudWatch speaks AWS JSON 1.0. A request's CBOR body becomes
//! the same document in JSON (timestamps, CBOR tag 1, become epoch seconds, as JSON 1.0 sends
//! them), and moto's JSON answer becomes CBOR again (its `*Timestamp`/`*Timestamps` members
//! tagged as timestamps). moto keeps the metric data and alarm states and answers every call; the
//! bridge only translates.

use minicbor::data::{IanaTag, Tag, Type};
use serde_json::{Map, Number, Value, json};

/// A CBOR document as JSON.
pub fn to_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.is_empty() {
        return Ok(json!({}));
    }
    let mut decoder = minicbor::Decoder::new(bytes);
    item(&mut decoder).map_err(|e| e.to_string())
}

fn item(d: &mut minicbor::Decoder<'_>) -> Result<Value, minicbor::decode::Error> {
    Ok(match d.datatype()? {
        Type::Bool => Value::Bool(d.bool()?),
        Type::Null | Type::Undefined => {
            d.skip()?;
            Value::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => json!(d.u64()?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => json!(d.i64()?),
        Type::F16 | Type::F32 | Type::F64 => Number::from_f64(d.f64()?).map_or(Value::Null, Value::Number),
        Type::String => Value::String(d.str()?.to_owned()),
        Type::StringIndef => {
            let mut text = String::new();
            for chunk in d.str_iter()? {
                text.push_str(chunk?);
            }
            Value::String(text)
        }
        Type::Array | Type::ArrayIndef => {
            let mut items = Vec::new();
            match d.array()? {
                Some(n) => {
                    for _ in 0..n {
                        items.push(item(d)?);
                    }
                }
                None => {
                    while d.datatype()? != Type::Break {
                        items.push(item(d)?);
                    }
                    d.skip()?;
                }
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let mut members = Map::new();
            let mut entry = |d: &mut minicbor::Decoder<'_>| -> Result<(), minicbor::decode::Error> {
                let key = d.str()?.to_owned();
                members.insert(key, item(d)?);
                Ok(())
            };
            match d.map()? {
                Some(n) => {
                    for _ in 0..n {
                        entry(d)?;
                    }
                }
                None => {
                    while d.datatype()? != Type::Break {
                        entry(d)?;
                    }
                    d.skip()?;
                }
            }
            Value::Object(members)
        }
        Type::Tag => {
            d.tag()?; // a timestamp (tag 1): its epoch seconds, as JSON 1.0 sends them
            item(d)?
        }
        _ => {
            d.skip()?;
            Value::Null
        }
    })
}

/// A JSON document as CBOR; members named `*Timestamp` (numbers) and `*Timestamps` (arrays of
/// numbers) become CBOR timestamps.
pub fn from_json(value: &Value) -> Vec<u8> {
    let mut encoder = minicbor::Encoder::new(Vec::new());
    write(&mut encoder, value, false);
    encoder.into_writer()
}

fn write(e: &mut minicbor::Encoder<Vec<u8>>, value: &Value, timestamp: bool) {
    let done = match value {
        Value::Null => e.null().map(|_| ()),
        Value::Bool(b) => e.bool(*b).map(|_| ()),
        Value::Number(n) if timestamp => {
            e.tag(Tag::from(IanaTag::Timestamp)).and_then(|e| e.f64(n.as_f64().unwrap_or_default())).map(|_| ())
        }
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => e.u64(u).map(|_| ()),
            (_, Some(i)) => e.i64(i).map(|_| ()),
            _ => e.f64(n.as_f64().unwrap_or_default()).map(|_| ()),
        },
        Value::String(s) => e.str(s).map(|_| ()),
        Value::Array(items) => {
            let started = e.array(items.len() as u64).map(|_| ());
            for item in items {
                write(e, item, timestamp);
            }
            started
        }
        Value::Object(members) => {
            let started = e.map(members.len() as u64).map(|_| ());
            for (key, member) in members {
                let _ = e.str(key);
                write(e, member, key.ends_with("Timestamp") || key.ends_with("Timestamps"));
            }
            started
        }
    };
    done.expect("writing to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_survives_the_round_trip_and_timestamps_are_tagged() {
        let document = json!({"Id": "m0", "Values": [3.5, 0], "Timestamps": [1795655147], "Ok": true});
        let bytes = from_json(&document);
        let mut decoder = minicbor::Decoder::new(&bytes);
        assert_eq!(decoder.map().unwrap(), Some(4));
        assert_eq!(
            to_json(&bytes).unwrap(),
            json!({"Id": "m0", "Values": [3.5, 0], "Timestamps": [1795655147.0], "Ok": true})
        );
        assert!(bytes.windows(1).any(|w| w[0] == 0xc1), "tag 1 (a timestamp) is written");
    }
}
