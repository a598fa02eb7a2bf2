//! Who is asking: accounts, passwords, API tokens, sessions and the sign-in throttle.

pub mod accounts;
pub mod add_user;
pub mod password;
pub mod sessions;
pub mod throttle;
pub mod tokens;
