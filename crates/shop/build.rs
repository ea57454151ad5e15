//! `sqlx::migrate!` embeds the migration files at compile time but does not tell cargo about
//! them: rebuild when they change.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
