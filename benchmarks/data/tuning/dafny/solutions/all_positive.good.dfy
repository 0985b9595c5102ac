// Whether every element of the array is positive.
method AllPositive(a: array<int>) returns (b: bool)
  ensures b <==> forall i :: 0 <= i < a.Length ==> a[i] > 0
{
  b := true;
  var i := 0;
  while i < a.Length
    invariant 0 <= i <= a.Length
    invariant b <==> forall j :: 0 <= j < i ==> a[j] > 0
  {
    if a[i] <= 0 {
      b := false;
    }
    i := i + 1;
  }
}
