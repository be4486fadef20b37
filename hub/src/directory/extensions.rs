//! Handing out extensions from the configured range.

use crate::model::{Extension, NewUser, User};
use crate::store::{StoreError, Unique};

use super::{Directory, DirectoryError, Result};

/// How often to retry when a concurrent writer takes the extension just picked.
const ATTEMPTS: usize = 8;

impl Directory {
    /// The lowest extension of the range that no user has.
    pub async fn next_free_extension(&self) -> Result<Extension> {
        let used = self.store.extensions_in_range(self.range.first, self.range.last).await?;
        first_gap(self.range.first, self.range.last, &used)
            .and_then(|n| Extension::new(n.to_string()).ok())
            .ok_or(DirectoryError::RangeExhausted(self.range))
    }

    /// Creates `new` with the next free extension; the store's unique constraint settles
    /// races with other writers, and the loser tries the next number.
    pub(super) async fn create_with_free_extension(&self, mut new: NewUser) -> Result<User> {
        let _turn = self.assigning.lock().await;
        for _ in 0..ATTEMPTS {
            new.extension = Some(self.next_free_extension().await?);
            match self.store.create_user(new.clone()).await {
                Err(StoreError::Conflict { what: Unique::Extension, .. }) => continue,
                other => return Ok(other?),
            }
        }
        Err(DirectoryError::Store(StoreError::Backend(
            "could not claim a free extension after several attempts (heavy contention)".into(),
        )))
    }
}

/// The smallest number in `first..=last` missing from the ascending list `used`.
fn first_gap(first: u32, last: u32, used: &[u32]) -> Option<u32> {
    let mut candidate = first;
    for &u in used {
        if u < candidate {
            continue;
        }
        if u > candidate {
            break;
        }
        candidate = u.checked_add(1)?;
    }
    (candidate <= last).then_some(candidate)
}

#[cfg(test)]
mod tests {
    use super::first_gap;

    #[test]
    fn gaps() {
        assert_eq!(first_gap(1000, 1999, &[]), Some(1000));
        assert_eq!(first_gap(1000, 1999, &[1000, 1001, 1003]), Some(1002));
        assert_eq!(first_gap(1000, 1002, &[1000, 1001, 1002]), None);
        assert_eq!(first_gap(1000, 1002, &[1001]), Some(1000));
        assert_eq!(first_gap(5, 5, &[5]), None);
    }
}
