//! Directory side of signing in: the provider's profile becomes (or updates) a user.

use crate::directory::{Actor, DirectoryError};
use crate::model::{NewUser, NumberSource, User, UserUpdate};
use crate::store::{StoreError, Unique};

use super::{Auth, Profile, SignInError};

/// How many `-2`, `-3`… suffixes to try when a username is taken by another account.
const USERNAME_SUFFIXES: usize = 20;

impl Auth {
    /// Finds the user for `profile` (by IdP subject, or a same-named account an administrator
    /// created before that is not linked to the provider yet), refreshes it from the claims,
    /// or creates it on first sign-in.
    pub(super) async fn upsert(&self, p: Profile) -> Result<User, SignInError> {
        let store = &self.inner.store;
        let existing = match store.user_by_subject(&p.subject).await? {
            Some(u) => Some(u),
            None => store.user_by_username(&p.username).await?.filter(|u| u.subject.is_none()),
        };
        match existing {
            Some(user) => self.refresh(user, p).await,
            None => self.first_sign_in(p).await,
        }
    }

    async fn refresh(&self, user: User, p: Profile) -> Result<User, SignInError> {
        if user.disabled {
            return Err(SignInError::Disabled(user.username));
        }
        let store = &self.inner.store;
        let mut update = UserUpdate {
            display_name: Some(p.display_name.clone()),
            email: Some(p.email.clone()),
            admin: p.admin,
            ..Default::default()
        };
        if user.subject.is_none() {
            update.subject = Some(p.subject.clone());
        }
        if let Some(ext) = &p.extension
            && user.extension.as_ref() != Some(ext)
        {
            update.extension = Some(Some(ext.clone()));
        }
        let updated = match store.update_user(&user.id, &update).await {
            Err(StoreError::Conflict { what: Unique::Extension, value }) => {
                tracing::warn!(user = %user.username, extension = %value,
                    "the provider's extension belongs to another user; keeping the current one");
                update.extension = None;
                store.update_user(&user.id, &update).await?
            }
            other => other?,
        };
        let idp_numbers: Vec<_> = updated.numbers_from(NumberSource::Idp).cloned().collect();
        let updated = if idp_numbers != p.numbers {
            store.set_numbers(&updated.id, NumberSource::Idp, &p.numbers).await?
        } else {
            updated
        };
        if updated.subject != user.subject
            || updated.display_name != user.display_name
            || updated.email != user.email
            || updated.extension != user.extension
            || updated.admin != user.admin
            || updated.numbers != user.numbers
        {
            let actor = Actor { name: "idp".into(), ip: None };
            self.inner
                .directory
                .audit(&actor, &updated.id, "user.update", "refreshed from identity-provider claims".into())
                .await;
            self.inner.directory.changed(&updated.id);
        }
        Ok(updated)
    }

    async fn first_sign_in(&self, p: Profile) -> Result<User, SignInError> {
        let actor = Actor { name: "idp".into(), ip: None };
        let mut new = NewUser {
            subject: Some(p.subject.clone()),
            username: p.username.clone(),
            display_name: p.display_name.clone(),
            email: p.email.clone(),
            extension: p.extension.clone(),
            admin: p.admin.unwrap_or(false),
            numbers: p.numbers.clone(),
        };
        for attempt in 0..USERNAME_SUFFIXES {
            if attempt > 0 {
                new.username = format!("{}-{}", p.username, attempt + 1);
            }
            match self.inner.directory.create(new.clone(), &actor).await {
                Ok(user) => return Ok(user),
                Err(DirectoryError::Store(StoreError::Conflict { what: Unique::Username, .. })) => continue,
                Err(DirectoryError::Store(StoreError::Conflict { what: Unique::Extension, value }))
                    if new.extension.is_some() =>
                {
                    tracing::warn!(extension = %value, "the provider's extension belongs to another user; assigning a free one");
                    new.extension = None;
                    return Ok(self.inner.directory.create(new, &actor).await?);
                }
                Err(DirectoryError::Store(StoreError::Conflict { what: Unique::Subject, .. })) => {
                    // Another sign-in of the same person won the race: use that user.
                    let user = self.inner.store.user_by_subject(&p.subject).await?;
                    return user
                        .ok_or_else(|| SignInError::Store(StoreError::NotFound(format!("subject {}", p.subject))));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(SignInError::Directory(DirectoryError::Invalid {
            field: "username",
            reason: format!("{:?} and its first {USERNAME_SUFFIXES} variants are taken", p.username),
        }))
    }

    /// The demo user called `name`, created on first use.
    pub(super) async fn demo_user(&self, name: &str) -> Result<User, SignInError> {
        let name = name.trim();
        let valid = !name.is_empty()
            && name.chars().count() <= 64
            && name.chars().all(|c| c.is_alphanumeric() || " .-'".contains(c));
        if !valid {
            return Err(SignInError::InvalidName(format!("{name:?}")));
        }
        let slug: String = name
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let slug = if slug.is_empty() { format!("user-{}", crate::model::UserId::generate()) } else { slug };
        let profile = Profile {
            subject: format!("demo:{slug}"),
            username: slug,
            display_name: name.to_string(),
            email: None,
            extension: None,
            numbers: Vec::new(),
            admin: None,
            ignored: Vec::new(),
        };
        match self.inner.store.user_by_subject(&profile.subject).await? {
            Some(user) if user.disabled => Err(SignInError::Disabled(user.username)),
            Some(user) => Ok(user),
            None => self.first_sign_in(profile).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::auth::{Auth, ClientInfo, Profile, SignInError};
    use crate::config::AuthConfig;
    use crate::directory::{Actor, AddUser, Directory};
    use crate::model::{Extension, Number, NumberKind, NumberSource, UserUpdate};
    use crate::store::{SqliteStore, Store};

    async fn auth() -> (Auth, Arc<dyn Store>, Directory, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("a.db"), 4).await.unwrap());
        let directory = Directory::new(store.clone(), "1000-1009".parse().unwrap());
        let auth = Auth::new(store.clone(), directory.clone(), &AuthConfig::default(), "https://hub.test").unwrap();
        (auth, store, directory, dir)
    }

    fn profile(sub: &str, username: &str) -> Profile {
        Profile {
            subject: sub.into(),
            username: username.into(),
            display_name: format!("{username} Example"),
            email: Some(format!("{username}@example.org")),
            extension: None,
            numbers: vec![Number { number: "+4930111".into(), kind: NumberKind::Work, source: NumberSource::Idp }],
            admin: Some(false),
            ignored: vec![],
        }
    }

    #[tokio::test]
    async fn later_sign_ins_refresh_the_user_from_the_claims() {
        let (auth, store, _d, _t) = auth().await;
        let first = auth.upsert(profile("s1", "ann")).await.unwrap();
        assert_eq!(first.extension.as_ref().unwrap().as_str(), "1000");
        let mut changed = profile("s1", "ann");
        changed.display_name = "Ann Other".into();
        changed.email = None;
        changed.extension = Some(Extension::new("1005").unwrap());
        changed.numbers =
            vec![Number { number: "+4930222".into(), kind: NumberKind::Mobile, source: NumberSource::Idp }];
        changed.admin = Some(true);
        let second = auth.upsert(changed).await.unwrap();
        assert_eq!(second.id, first.id);
        assert_eq!(second.display_name, "Ann Other");
        assert_eq!(second.email, None);
        assert_eq!(second.extension.unwrap().as_str(), "1005");
        assert_eq!(second.numbers.iter().map(|n| n.number.as_str()).collect::<Vec<_>>(), ["+4930222"]);
        assert!(second.admin);
        // Numbers the user added themselves survive an IdP refresh.
        store
            .set_numbers(
                &first.id,
                NumberSource::User,
                &[Number { number: "+4930333".into(), kind: NumberKind::Home, source: NumberSource::User }],
            )
            .await
            .unwrap();
        let mut no_admin_claim = profile("s1", "ann");
        no_admin_claim.admin = None;
        let third = auth.upsert(no_admin_claim).await.unwrap();
        assert!(third.admin, "no admin claim: the admin flag stays");
        assert_eq!(third.numbers.len(), 2);
        let actions: Vec<_> =
            store.audit_entries(Some(&first.id), 10).await.unwrap().into_iter().map(|e| e.action).collect();
        assert_eq!(actions, ["user.update", "user.update", "user.create"]);
    }

    #[tokio::test]
    async fn an_administrator_created_account_is_linked_on_first_sign_in() {
        let (auth, _s, directory, _t) = auth().await;
        let add = AddUser { username: "carol".into(), display_name: "Carol".into(), ..Default::default() };
        let pre = directory.add_user(add, &Actor::cli()).await.unwrap();
        let user = auth.upsert(profile("carol-sub", "carol")).await.unwrap();
        assert_eq!(user.id, pre.id);
        assert_eq!(user.subject.as_deref(), Some("carol-sub"));
        // Someone else at the provider with the same username gets their own account.
        let other = auth.upsert(profile("another-carol", "carol")).await.unwrap();
        assert_ne!(other.id, pre.id);
        assert_eq!(other.username, "carol-2");
    }

    #[tokio::test]
    async fn a_claimed_extension_that_is_taken_falls_back_to_a_free_one() {
        let (auth, _s, _d, _t) = auth().await;
        let mut a = profile("a", "a");
        a.extension = Some(Extension::new("1003").unwrap());
        auth.upsert(a.clone()).await.unwrap();
        let mut b = profile("b", "b");
        b.extension = Some(Extension::new("1003").unwrap());
        let user = auth.upsert(b).await.unwrap();
        assert_eq!(user.extension.unwrap().as_str(), "1000");
    }

    #[tokio::test]
    async fn disabled_users_cannot_sign_in_and_demo_names_are_checked() {
        let (auth, store, _d, _t) = auth().await;
        let u = auth.upsert(profile("d", "dan")).await.unwrap();
        store.update_user(&u.id, &UserUpdate { disabled: Some(true), ..Default::default() }).await.unwrap();
        assert!(matches!(auth.upsert(profile("d", "dan")).await, Err(SignInError::Disabled(_))));
        let client = ClientInfo::default();
        assert!(matches!(auth.demo_sign_in("  ", &client).await, Err(SignInError::InvalidName(_))));
        assert!(matches!(auth.demo_sign_in("a<b", &client).await, Err(SignInError::InvalidName(_))));
        let (grace, _) = auth.demo_sign_in("Grace Hopper", &client).await.unwrap();
        let (again, _) = auth.demo_sign_in("Grace Hopper", &client).await.unwrap();
        assert_eq!(grace.id, again.id);
        assert_eq!(grace.subject.as_deref(), Some("demo:grace-hopper"));
    }
}
