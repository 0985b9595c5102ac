// Whether every element of the array is positive.
method AllPositive(a: array<int>) returns (b: bool)
  ensures b <==> forall i :: 0 <= i < a.Length ==> a[i] > 0
