// 0 + 1 + ... + n by a loop; the invariant is nonlinear.
method SumTo(n: nat) returns (s: nat)
  ensures s == n * (n + 1) / 2
{
  s := 0;
  var i := 0;
  while i < n
    invariant 0 <= i <= n
    invariant s == i * (i + 1) / 2
  {
    s := s + i;
    i := i + 1;
  }
}
