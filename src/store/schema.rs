//! Table definitions, matching `migrations/{sqlite,postgres}`.

diesel::table! {
    clients (id) {
        id -> Text,
        name -> Text,
        scopes -> Text,
        audiences -> Text,
        access_token_ttl -> BigInt,
        refresh_tokens -> Bool,
        refresh_token_ttl -> Nullable<BigInt>,
        refresh_family_ttl -> Nullable<BigInt>,
        can_introspect -> Bool,
        allowed_networks -> Nullable<Text>,
        tokens_valid_after -> Nullable<BigInt>,
        disabled_at -> Nullable<BigInt>,
        last_token_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    client_secrets (id) {
        id -> Text,
        client_id -> Text,
        secret_hash -> Binary,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    client_generation (id) {
        id -> BigInt,
        generation -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        public_jwk -> Text,
        private_key_sealed -> Binary,
        kek_id -> Text,
        created_at -> BigInt,
        activates_at -> BigInt,
        retires_at -> Nullable<BigInt>,
        removes_at -> Nullable<BigInt>,
        publishes_at -> BigInt,
    }
}

diesel::table! {
    refresh_families (id) {
        id -> Text,
        client_id -> Text,
        scope -> Text,
        audience -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Binary,
        family_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        rotated_from -> Nullable<Binary>,
    }
}

diesel::table! {
    family_access_tokens (jti) {
        jti -> Text,
        family_id -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    revoked_tokens (seq) {
        seq -> BigInt,
        jti -> Nullable<Text>,
        client_id -> Text,
        expires_at -> BigInt,
        revoked_at -> BigInt,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        at -> BigInt,
        kind -> Text,
        client_id -> Nullable<Text>,
        source -> Nullable<Text>,
        detail -> Nullable<Text>,
    }
}

diesel::joinable!(client_secrets -> clients (client_id));
diesel::joinable!(refresh_tokens -> refresh_families (family_id));
diesel::joinable!(family_access_tokens -> refresh_families (family_id));
diesel::joinable!(refresh_families -> clients (client_id));

diesel::allow_tables_to_appear_in_same_query!(
    clients,
    client_secrets,
    client_generation,
    signing_keys,
    refresh_families,
    refresh_tokens,
    family_access_tokens,
    revoked_tokens,
    audit_events,
);
