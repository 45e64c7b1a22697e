fn main() {
    println!("flowsketch: under construction");
}
