// 0 + 1 + ... + n by a loop; the invariant is nonlinear.
method SumTo(n: nat) returns (s: nat)
  ensures s == n * (n + 1) / 2
