// Parity of n, found by counting down (no % in the body).
method IsEven(n: nat) returns (even: bool)
  ensures even <==> n % 2 == 0
