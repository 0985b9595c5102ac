// The n-th Fibonacci number, by definition.
function Fib(n: nat): nat
{
  if n < 2 then n else Fib(n - 1) + Fib(n - 2)
}

// Fib(n) in linear time with two accumulators.
method ComputeFib(n: nat) returns (f: nat)
  ensures f == Fib(n)
{
  var prev, cur := 0, 1;
  var i := 0;
  while i < n
    invariant 0 <= i <= n
    invariant prev == Fib(i) && cur == Fib(i + 1)
  {
    prev, cur := cur, prev + cur;
    i := i + 1;
  }
  f := cur;
}
