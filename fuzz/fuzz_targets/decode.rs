//! Fuzzes the datagram decoder (issue 3, item 5): any input gives a value or an error, never a panic, and a
//! decoded datagram re-encodes to one that decodes to the same value.
#![no_main]

use hactl::proto::wire::{Keys, VERSION, decode, encode, seal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = Keys(vec![b"fuzz".to_vec()]);
    let _ = decode(data, &keys);
    // The same bytes behind a valid version byte and MAC, so the record parser is reached.
    let mut body = vec![VERSION];
    body.extend_from_slice(data);
    if let Ok((header, records)) = decode(&seal(body, &keys), &keys) {
        let again = encode(&header, &records, &keys);
        assert_eq!(decode(&again, &keys).ok(), Some((header, records)));
    }
});
