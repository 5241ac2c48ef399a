fn main() {
    std::process::exit(pam_portal::admin::main(std::env::args().skip(1).collect()));
}
