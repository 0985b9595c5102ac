// Three times n, by repeated addition.
method Triple(n: nat) returns (t: nat)
  ensures t == 3 * n
{
  t := 0;
  var i := 0;
  while i < n
    invariant i <= n
    invariant t == 3 * i
  {
    t := t + 3;
    i := i + 1;
  }
}
