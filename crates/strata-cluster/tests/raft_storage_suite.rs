//! Runs openraft's storage conformance suite against the engine-backed log store and state
//! machine of one partition group.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use strata_cluster::partition::Keyspace;
use strata_cluster::raft::log_store::LogStore;
use strata_cluster::raft::state_machine::StateMachine;
use strata_cluster::raft::types::{StorageError, TypeConfig};

struct EngineStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for EngineStoreBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| {
            openraft::StorageError::from_io_error(
                openraft::ErrorSubject::Store,
                openraft::ErrorVerb::Write,
                e,
            )
        })?;
        let db = strata_engine::Db::open(dir.path(), strata_engine::Options::default()).map_err(
            |e| {
                openraft::StorageError::from_io_error(
                    openraft::ErrorSubject::Store,
                    openraft::ErrorVerb::Write,
                    std::io::Error::other(e),
                )
            },
        )?;
        let db = Arc::new(db);
        // Partition 5's group, so the suite runs on a non-zero prefix.
        let log = LogStore::open(Arc::clone(&db), strata_cluster::partition::group_of(5), 0)?;
        let sm = StateMachine::new(db, Keyspace::Partition(5), log.unsynced());
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_conformance() {
    if let Err(e) = Suite::test_all(EngineStoreBuilder) {
        panic!("storage conformance failed: {e}");
    }
}
