(** Multiplying by zero on the right. *)
Theorem mult_zero_r : forall n : nat, n * 0 = 0.
Proof.
  intros n. induction n as [| k IH].
  - reflexivity.
  - simpl. exact IH.
Qed.
