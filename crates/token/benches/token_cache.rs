fn main() {} // placeholder until the bench lands
