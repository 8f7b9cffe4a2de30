//! `WriteBatch::decode` on arbitrary bytes: never panics; a batch it accepts has sequence numbers
//! that fit in `MAX_SEQNO`, and re-encodes (by an independent encoder) to at most as many bytes,
//! which decode to the same sequence number and operations. Operations within the builder's limits
//! rebuild an equal batch through the public `put`/`delete`/`delete_range` API.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_engine::WriteBatch;
use strata_engine::batch::BatchOp;
use strata_engine::key::MAX_SEQNO;
use strata_fuzz::encode_batch;

fuzz_target!(|data: &[u8]| {
    let Some((seq, batch)) = WriteBatch::decode(data) else {
        return;
    };
    let ops: Vec<BatchOp<'_>> = batch
        .iter()
        .map(|op| op.expect("decode accepted a batch whose iterator fails"))
        .collect();
    assert_eq!(ops.len(), batch.len());
    assert_eq!(batch.encoded_len(), data.len());
    // Recovery numbers the operations seq, seq + 1, ...: they must all be valid sequence numbers.
    let end = seq
        .checked_add(ops.len() as u64)
        .expect("sequence numbers overflow");
    assert!(end <= MAX_SEQNO + 1, "batch numbered past MAX_SEQNO");

    let reencoded = encode_batch(seq, &ops);
    assert!(
        reencoded.len() <= data.len(),
        "canonical encoding is longer than the input"
    );
    let (seq2, batch2) = WriteBatch::decode(&reencoded).expect("re-encoded batch does not decode");
    assert_eq!(seq2, seq);
    let ops2: Vec<BatchOp<'_>> = batch2.iter().map(|op| op.expect("valid")).collect();
    assert_eq!(ops2, ops);

    let mut rebuilt = WriteBatch::new();
    let accepted = ops.iter().all(|op| match *op {
        BatchOp::Put { key, value } => rebuilt.put(key, value).is_ok(),
        BatchOp::Delete { key } => rebuilt.delete(key).is_ok(),
        BatchOp::DeleteRange { start, end } => rebuilt.delete_range(start, end).is_ok(),
    });
    if accepted {
        let ops3: Vec<BatchOp<'_>> = rebuilt.iter().map(|op| op.expect("valid")).collect();
        assert_eq!(ops3, ops);
        assert_eq!(rebuilt.encoded_len(), reencoded.len());
    }
});
