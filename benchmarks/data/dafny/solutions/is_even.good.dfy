// Parity of n, found by counting down (no % in the body).
method IsEven(n: nat) returns (even: bool)
  ensures even <==> n % 2 == 0
{
  var k := n;
  even := true;
  while k > 0
    invariant 0 <= k <= n
    invariant even <==> (n - k) % 2 == 0
  {
    k := k - 1;
    even := !even;
  }
}
