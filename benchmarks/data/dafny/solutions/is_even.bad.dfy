// Parity of n, found by counting down (no % in the body).
method IsEven(n: nat) returns (even: bool)
  ensures even <==> n % 2 == 0
{
  var k := n;
  even := false;
  while k > 0
    invariant 0 <= k <= n
  {
    k := k - 1;
    even := !even;
  }
}
