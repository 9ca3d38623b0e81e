// `sqlx::migrate!` embeds the migrations when this crate compiles. It reads each file with
// `include_str!`, so Cargo notices edits, but nothing tells Cargo about the directory: a new
// migration would not reach the binary until some source file of this crate changed too.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
