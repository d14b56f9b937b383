//! The store as the replication crate sees it (feature `nats`): a writer's commits to push, a
//! replica's records to fill. Changes travel as JSON, the records' own encoding.

use replication::{BoxError, CommitLog, CommitSink};

use crate::records::Change;
use crate::{Follower, MemoryStore};

/// The writer's records, as replication reads them.
pub struct CommitLogOf<'a>(pub &'a MemoryStore);

impl CommitLog for CommitLogOf<'_> {
    fn commit_seq(&self) -> Result<u64, BoxError> {
        Ok(self.0.commit_seq()?)
    }

    fn commits_since(
        &self,
        after: u64,
        visit: &mut dyn FnMut(u64, Vec<Vec<u8>>) -> Result<bool, BoxError>,
    ) -> Result<(), BoxError> {
        let mut failure: Option<BoxError> = None;
        self.0.commits_since(after, |seq, changes| {
            let encoded: Result<Vec<Vec<u8>>, _> = changes.iter().map(serde_json::to_vec).collect();
            let go_on = encoded.map_err(BoxError::from).and_then(|e| visit(seq, e));
            match go_on {
                Ok(go_on) => Ok(go_on),
                Err(e) => {
                    failure = Some(e);
                    Ok(false)
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }
}

/// A replica's records, as replication fills them.
pub struct CommitSinkOf<'a>(pub &'a mut Follower);

impl CommitSink for CommitSinkOf<'_> {
    fn seq(&self) -> u64 {
        self.0.seq()
    }

    fn apply(&mut self, seq: u64, changes: Vec<Vec<u8>>) -> Result<(), BoxError> {
        let changes: Vec<Change> =
            changes.iter().map(|c| serde_json::from_slice(c)).collect::<Result<_, _>>().map_err(
                |e| format!("commit {seq}: a change is not one this program reads ({e})"),
            )?;
        Ok(self.0.apply(seq, changes)?)
    }
}
