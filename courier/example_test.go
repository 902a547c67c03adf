package courier_test

import (
	"context"
	"fmt"
	"time"

	"github.com/authflow/authflow/courier"
)

// A host's test reads the login code from a Capture standing in for SMTP.
func ExampleCapture() {
	mail := courier.NewCapture()
	q := courier.NewQueue(mail, courier.QueueConfig{})
	defer q.Close(context.Background())

	// What the code method does when a user asks for a code.
	m, err := courier.Templates{}.LoginCode(courier.LoginCodeData{
		To: "ada@example.com", Code: "042137", ExpiresInMinutes: 15,
	})
	if err != nil {
		panic(err)
	}
	if err := q.Enqueue(m); err != nil {
		panic(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := mail.Wait(ctx, "ada@example.com")
	if err != nil {
		panic(err)
	}
	fmt.Println(got.Subject)
	fmt.Print(got.Text)
	// Output:
	// Use code 042137 to log in
	// Login to your account with the following code:
	//
	// 042137
	//
	// It expires in 15 minutes.
}

func ExampleNewSMTP() {
	smtp, err := courier.NewSMTP(courier.SMTPConfig{
		URL:      "smtp://mailpit:1025/?disable_starttls=true",
		From:     "no-reply@example.com",
		FromName: "Example",
	})
	if err != nil {
		panic(err)
	}
	q := courier.NewQueue(smtp, courier.QueueConfig{})
	defer q.Close(context.Background())
	// Pass q to the code method; Close it when the server shuts down.
}
