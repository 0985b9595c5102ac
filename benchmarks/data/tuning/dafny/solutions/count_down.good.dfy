// The sum n + (n - 1) + ... + 1, counting down.
function Sum(n: nat): nat
{
  if n == 0 then 0 else n + Sum(n - 1)
}

method SumDown(n: nat) returns (s: nat)
  ensures s == Sum(n)
{
  s := 0;
  var i := n;
  while i > 0
    invariant s + Sum(i) == Sum(n)
  {
    s := s + i;
    i := i - 1;
  }
}
