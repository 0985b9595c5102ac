// Three times n, by repeated addition.
method Triple(n: nat) returns (t: nat)
  ensures t == 3 * n
