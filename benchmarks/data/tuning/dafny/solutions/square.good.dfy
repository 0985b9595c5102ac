// n squared, by adding n to itself n times.
method Square(n: nat) returns (s: nat)
  ensures s == n * n
{
  s := 0;
  var i := 0;
  while i < n
    invariant i <= n
    invariant s == i * n
  {
    s := s + n;
    i := i + 1;
  }
}
