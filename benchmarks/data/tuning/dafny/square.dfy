// n squared, by adding n to itself n times.
method Square(n: nat) returns (s: nat)
  ensures s == n * n
