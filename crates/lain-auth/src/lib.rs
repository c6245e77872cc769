//! Token verification for services that trust sso (being written).
